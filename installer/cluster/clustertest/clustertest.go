package clustertest

// SingleNode is one server, control plane and worker.
const SingleNode = `apiVersion: ferry.dev/v1alpha1
kind: Cluster
metadata: {name: lab}
spec:
  controlPlaneEndpoint: api.lab.example:6443
  nodes:
    - name: node1
      hostname: node1.lab.example
      roles: [control-plane, worker]
`

// HA is three control planes and four workers, listed interleaved.
const HA = `apiVersion: ferry.dev/v1alpha1
kind: Cluster
metadata: {name: lab}
spec:
  controlPlaneEndpoint: api.lab.example:6443
  nodes:
    - {name: cp1, hostname: cp1.lab.example, roles: [control-plane]}
    - {name: w1, hostname: w1.lab.example, roles: [worker]}
    - {name: cp2, hostname: cp2.lab.example, roles: [control-plane]}
    - {name: w2, hostname: w2.lab.example, roles: [worker]}
    - {name: cp3, hostname: cp3.lab.example, roles: [control-plane]}
    - {name: w3, hostname: w3.lab.example, roles: [worker]}
    - {name: w4, hostname: w4.lab.example, roles: [worker]}
`
