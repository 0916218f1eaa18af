// Package converge is the node's convergence loop (R3, R6): observe the
// node, plan as a pure function of desired and observed state, apply the
// plan's small idempotent operations, each recorded in a journal before it
// runs. Installation is an upgrade from nothing; a second run with the same
// desired state plans nothing ("0 changes").
//
//	Desired (bundle + cluster.yaml) ─┐
//	                                  ├─► Plan ─► []Op ─► Host.Apply (journal) ─► node
//	Host.Observe (rpm, files, units) ─┘                     │ failure: stop, say which step
//	                                                          └─ re-run: observe again, continue
package converge
