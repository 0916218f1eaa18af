// Package installer is the node side of Ferry. Each command of
// cmd/installer (which only wires flags into options) lives in the
// package named for what it does:
//
//	verify, serve, bundle   content         verified bundles served as an OCI
//	                                        registry and yum repositories
//	bootstrap, join, apply  bootstrap       converge this node (Run)
//	daemon, status          nodeagent       the node daemon: applies on
//	                                        demand, roll-out steps, renewals;
//	                                        the node's status
//	upgrade                 upgrade         roll a new bundle over the cluster
//	token, user             access          join files, users' kubeconfigs
//	pki renew-ca            certrenew       renew certificates (CAs from the
//	                                        offline roots; workers' leaves
//	                                        through the CSR API)
//	apiproxy                apiproxy        the node-local API server proxy
//
// What they share:
//
//	cluster      cluster.yaml (load, defaults, validation), ports, topology
//	layout       the node's paths
//	bundlestore  the node's bundles: import, stage, target, the rules for
//	             moving between bundles
//	bundlefetch  a bundle fetched from the content services
//	joinfile     the join file's format
//	nodestate    reads the node (once per round) ─► desired (pure) renders
//	             the node (with nodeconfig's files) ─► converge observes,
//	             plans (pure) and applies operations
//	addon(s)     cluster add-ons: renderers, and server-side apply with prune
//	rollout      the roll-out orchestrator, and the node's step (NodeStep)
//	pki          the certificate authorities
//
// A converge round:
//
//	cluster.yaml + bundle facts ─┐
//	nodestate.Observe ───────────┴─► desired.Node ─► converge.Host.Observe
//	    ─► converge.Plan (+ the add-ons' plans, on a converged control plane)
//	    ─► converge.Host.Apply ─► (again until 0 changes)
//
// docs/architecture.md is the map, with where to add an add-on, an
// operation or a node fact.
package installer
