package addons

import "github.com/ferry-k8s/ferry/installer/addon"

// All is every add-on, in the order the node applies them.
func All() []addon.Addon {
	return []addon.Addon{
		NodeRBAC{},
		CoreDNS{},
	}
}
