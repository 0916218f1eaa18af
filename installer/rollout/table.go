package rollout

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Row is one node in the progress table.
type Row struct {
	Node    string
	Phase   Phase
	Version string
	Elapsed time.Duration
	Error   string
}

// WriteTable prints rows as the progress table: node, phase, version,
// elapsed (and the error of a failed node).
func WriteTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tPHASE\tVERSION\tELAPSED\t")
	for _, r := range rows {
		elapsed := "-"
		if r.Elapsed > 0 {
			elapsed = r.Elapsed.Round(100 * time.Millisecond).String()
		}
		version := r.Version
		if version == "" {
			version = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Node, r.Phase, version, elapsed, r.Error)
	}
	return tw.Flush()
}
