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
//
// # Operations
//
// An Op is a small type that carries everything it needs (an operation
// applies alone, without the Desired it was planned from) and shows as
// "kind target (reason)" in plans, journals and the end-to-end suites.
// Each family has one file with its operation types, the sub-planners that
// plan them, and their Apply:
//
//	files.go     CreateDir, WriteFile, FixPerms          planFiles, planOwned
//	packages.go  InstallPackages                         planPackages
//	units.go     RunCommand, ReloadSystemd, EnableUnit,  planCommands, planUnits
//	             StartUnit, RestartUnit
//	kubeadm.go   InitControlPlane, ReconfigureControlPlane, JoinCluster,
//	             UpgradeKubernetes, PointKubeconfig      planKubeadmInit, planKubeadmJoin,
//	                                                     planKubeadmUpgrade, planKubeconfigs
//	etcd.go      AddEtcdMember, PromoteEtcdMember        planEtcdAdd, planEtcdPromote
//	node.go      RemoveNode, LabelNode, TaintNode,       planRemovedNodes, planNodeObject
//	             UntaintNode
//
// plan.go composes the sub-planners in the order a plan runs; host.go is
// the shared plumbing (Observe, Apply and its journal, commands, paths,
// owners, kubectl's arguments, the applied record).
//
// # Adding a node feature
//
// A field in Desired (what the node must have) and, when the node is read
// for it, in Observed and Host.Observe; then, in its family's file (or a
// new file for a new family): an operation type (a Kind constant, Target,
// String, an idempotent Apply, Because embedded for the reason) and a
// sub-planner from Desired and Observed to operations, with its table test
// in the family's _test.go (desired and observed in, operation strings
// out); last, the sub-planner's call at its place in Plan.
package converge
