// Package addons holds the cluster add-ons' renderers and their registry
// (All). Adding an add-on is one renderer file (a type implementing
// addon.Addon) and one line in All; installer/addon applies them.
package addons
