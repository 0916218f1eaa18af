// Package upgrade is `installer upgrade --iso NEW.iso`, run on a
// control-plane node: it readies the new bundle and hands the cluster to
// the roll-out orchestrator (installer/rollout).
//
//	NEW.iso ─bundlestore.ReadFacts (verify in full)─► MayFollow the installed
//	    ─► room for it and an etcd snapshot (checkSpace)
//	    ─► bundlestore.Import (+ its validity statement)
//	    ─► bootstrap.Run on this node: its content service serves it
//	    ─► rollout.Run through the node-local API server proxy: preflight
//	       (every API server's /readyz, checkAPIServers), staging, etcd
//	       snapshot (the health-check client's certificate), nodes one by
//	       one, each converged by its own daemon (installer/nodeagent)
//
// Run again, it resumes a roll-out that stopped and reports nothing to do
// after one that finished.
package upgrade
