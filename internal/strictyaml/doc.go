// Package strictyaml reads Ferry's configuration files (cluster.yaml, the
// content service's and the API server proxy's configurations, the bundle
// spec and lock) one way: bounded in size, unknown fields refused, and
// every problem said in the file's terms as "field.path: problem"
// (FieldError): an unknown field by its path ("spec.packages[0].recursive:
// unknown field"), a type error by its field ("spec.firewall.enabled: must
// be true or false, got string"), apiVersion and kind checked. Load adds
// the file: "cluster config /etc/ferry/cluster.yaml: spec.nodes[0].roles:
// …".
package strictyaml
