// Package nodeagent is the node daemon, `installer daemon`
// (ferry-node.service, Type=notify): it converges its node on demand,
// follows roll-outs and keeps the node's certificates and configuration
// up to date, and serves the node's status.
//
//	Unix socket (0700): GET /status ─► ReadStatus + the last result
//	                    POST /apply ─► bootstrap.Run (one at a time)
//	every watch round (watchOnce, with the kubelet's credentials):
//	    maintain: a worker renews its leaves through the CSR API
//	        (installer/certrenew), a control plane signs the workers'
//	        requests; every MaintenanceInterval, bootstrap.Run
//	    its Node ─► rollout.ObserveNodeInput ─► rollout.NodeStep (pure)
//	        ─► carry the step out: stage (bundlestore.Stage, serve, pull
//	        images), fetch and decide (mayMove: bundlestore.MayFollow, a
//	        move back only on the orchestrator's order), move the target
//	        and apply, report on the Node (field manager ferry-node)
//
// ReadStatus is also what `installer status` prints.
package nodeagent
