// Package progress draws single-line progress bars for long work (image
// copies, hashing, the ISO write) on a terminal, and nothing elsewhere: when
// output goes to a file, a pipe or a JSON consumer, bars would only be noise,
// and structured logs say what happened instead.
package progress
