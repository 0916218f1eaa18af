// Package apiproxy is the node-local API server proxy (R32): every node,
// worker or control plane, runs one, so that the kubelet, kube-proxy and
// the node daemon reach "https://127.0.0.1:6444" and through it whichever
// API server is healthy, without a load balancer or a virtual IP.
//
// It is a layer-4 (TCP) proxy: TLS is not terminated, the clients verify
// the API server's own certificate and present their own client
// certificates end to end. That certificate carries the control-plane
// endpoint's DNS name (api.lab.example.com), not 127.0.0.1, so a node's
// kubeconfigs either name the server https://127.0.0.1:6444 with
// tls-server-name: api.lab.example.com, or name it
// https://api.lab.example.com:6444 with /etc/hosts pointing that name at
// 127.0.0.1.
//
//	client ──TCP──▶ 127.0.0.1:6444 ──order()──▶ dial backend 1 ─✗ strike
//	                                            dial backend 2 ─✓ splice ⇄
//
//	health loop, per backend:  GET https://<backend>/readyz  (CA file, server name)
//	   Unknown ──healthyThreshold successes──▶ Healthy ──unhealthyThreshold failures──▶ Unhealthy
//	   a failed dial counts as a failure too (passive check); only checks count as successes
//
// Choosing a backend for a new connection: the healthy backends first;
// when none is known healthy (API servers starting, or all down) every
// backend is tried, those with no verdict yet before the unhealthy ones.
// A failed dial is a strike against the backend and the connection moves
// on to the next one, so the client sees no error as long as some backend
// accepts. Only when the healthy backends all fail to accept are the
// others tried.
//
// When a backend turns unhealthy while another is healthy, its client
// connections are closed: a client holds its connection (HTTP/2, watches)
// for as long as it stays open, and one left on an API server that cannot
// serve (its etcd member restarting during an upgrade, a shutdown) would
// wait out its own timeouts — long enough for a kubelet's lease to lapse.
// Closed, the clients reconnect, to a healthy backend. With no healthy
// backend the connections stay: there is nowhere better.
//
// Balancing is least-connections, ties broken round-robin. Kubernetes
// clients hold few, long-lived connections (HTTP/2, watches) rather than
// many short ones: round-robin would spread the new connections evenly
// but leave a backend that comes back after a restart almost idle while
// the others keep every old watch; least-connections sends the clients
// that reconnect to it until the counts are level. On a node the counts
// are small and local, so the choice is exact and cheap.
//
// Connections are spliced both ways (io.Copy, which is splice(2) between
// TCP sockets); a clean EOF on one side is passed on as a half-close
// (CloseWrite), an error tears the pair down. There is no idle timeout
// (watches are quiet for minutes); TCP keepalives find dead peers. What is
// bounded: client connections at once (maxConnections; more are closed at
// once), the dial timeout, the health check's timeout and the size of its
// response, the configuration and PEM files read.
//
// Run reports to systemd (Type=notify): READY=1 once a backend is healthy,
// STATUS= on every state change, WATCHDOG=1, STOPPING=1. The unit file is
// internal/systemd/ferry-apiproxy.service; the configuration file is
// described at Config. Logs (log/slog) are state changes only at info and
// warn; per-connection failures are debug. Metrics (see metrics) are
// served over TLS at /metrics on metrics.listen, with /readyz there too.
//
// Stopping: the listener closes, health checks stop, connections in
// flight get Options.DrainTimeout to end, and those left are closed.
package apiproxy
