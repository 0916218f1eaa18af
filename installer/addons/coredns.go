package addons

import (
	"errors"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/ferry-k8s/ferry/installer/addon"
)

// CoreDNS is the cluster's DNS, as kubeadm's CoreDNS add-on deploys it
// (cmd/kubeadm/app/phases/addons/dns/manifests.go, the same for kubeadm
// v1.35 and v1.36) with what Ferry's kubeadm patch added: the
// ServiceAccount coredns, the ClusterRole and ClusterRoleBinding
// system:coredns, the ConfigMap coredns (kubeadm's default Corefile for
// spec.kubernetes.clusterDomain), the Deployment coredns and the Service
// kube-dns at the service subnet's tenth address (cluster.Kubernetes.ClusterDNS,
// the kubelet's clusterDNS too). kubeadm no longer deploys it: its
// addon/coredns phase is skipped at init and upgrade.
//
// The bundle's CoreDNS image runs as a non-root user (R12); it binds port
// 53 because the pod's network namespace lets unprivileged ports start
// there (net.ipv4.ip_unprivileged_port_start, a namespaced sysctl
// Kubernetes counts as safe). The container keeps kubeadm's security
// context (read-only root, no privilege escalation, capabilities dropped
// but NET_BIND_SERVICE, which a non-root process does not get anyway).
//
// Clusters set up before this add-on have kubeadm's objects under the
// same names, and the Deployment's selector (k8s-app: kube-dns) is
// kubeadm's, since a selector cannot change. The first apply adopts
// them: server-side apply with force takes every field Ferry renders
// (with the same value, a field is then shared with kubeadm's manager).
// Fields kubeadm set that Ferry does not render (a Corefile-backup key
// left by a kubeadm Corefile migration) stay, owned by kubeadm's manager,
// until someone changes or removes them; so does a field shared with
// kubeadm that a later Ferry stops rendering. Unlike kubeadm, Ferry keeps
// the rendered Corefile and 2 replicas: an edited Corefile or a scaled
// Deployment is put back at the next apply.
type CoreDNS struct{}

func (CoreDNS) Name() string { return "coredns" }

// The names and ports of kubeadm's CoreDNS add-on.
const (
	corednsName        = "coredns"
	corednsRole        = "system:coredns"
	corednsService     = "kube-dns"
	corednsAppLabel    = "k8s-app"
	corednsReplicas    = 2
	corednsDNSPort     = 53
	corednsMetricsPort = 9153
	corednsHealthPort  = 8080
	corednsReadyPort   = 8181
	corednsConfigDir   = "/etc/coredns"
	corednsCorefileKey = "Corefile"
	// controlPlaneTaint is the taint kubeadm (and cluster.Defaulted) puts
	// on control-plane nodes that run no workloads.
	controlPlaneTaint = "node-role.kubernetes.io/control-plane"
)

func (CoreDNS) Render(in addon.Input) (*addon.Rendered, error) {
	if in.Cluster == nil {
		return nil, errors.New("no cluster configuration")
	}
	k := in.Cluster.Spec.Kubernetes
	dnsIP, err := k.ClusterDNS()
	if err != nil {
		return nil, err
	}
	if k.ClusterDomain == "" {
		return nil, errors.New("spec.kubernetes.clusterDomain is empty (not defaulted?)")
	}
	image := in.Images["coredns"]
	if image == "" {
		return nil, fmt.Errorf("bundle %s %s has no coredns image", in.BundleName, in.BundleVersion)
	}
	// kubeadm's upgrade preflight reads the running CoreDNS version from
	// this Deployment's image tag (CoreDNSMigration): a digest alone
	// would fail every `kubeadm upgrade apply`.
	if !hasTag(image) {
		return nil, fmt.Errorf("coredns image %s has no tag: kubeadm's upgrade checks read CoreDNS's version from it", image)
	}
	labels := map[string]string{corednsAppLabel: "kube-dns"}
	sa := &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: metav1.ObjectMeta{Name: corednsName, Namespace: metav1.NamespaceSystem},
	}
	role := &rbacv1.ClusterRole{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{Name: corednsRole},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"endpoints", "services", "pods", "namespaces"}, Verbs: []string{"list", "watch"}},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
		},
	}
	binding := &rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: corednsRole},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: corednsRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: corednsName, Namespace: metav1.NamespaceSystem}},
	}
	config := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: corednsName, Namespace: metav1.NamespaceSystem},
		Data:       map[string]string{corednsCorefileKey: corefile(k.ClusterDomain)},
	}
	service := &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: corednsService, Namespace: metav1.NamespaceSystem,
			Labels: map[string]string{corednsAppLabel: "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
			Annotations: map[string]string{
				"prometheus.io/port":   fmt.Sprint(corednsMetricsPort),
				"prometheus.io/scrape": "true",
			}},
		Spec: corev1.ServiceSpec{
			ClusterIP: dnsIP.String(),
			Selector:  labels,
			Ports: []corev1.ServicePort{
				{Name: "dns", Port: corednsDNSPort, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(corednsDNSPort)},
				{Name: "dns-tcp", Port: corednsDNSPort, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(corednsDNSPort)},
				{Name: "metrics", Port: corednsMetricsPort, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(corednsMetricsPort)},
			},
		},
	}
	deployment := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: appsv1.SchemeGroupVersion.String(), Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: corednsName, Namespace: metav1.NamespaceSystem, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptrTo[int32](corednsReplicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: ptrTo(intstr.FromInt32(1))},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corednsPod(image, labels),
			},
		},
	}
	r := &addon.Rendered{Images: []string{image}}
	for _, typed := range []runtime.Object{sa, role, binding, config, deployment, service} {
		u, err := toUnstructured(typed)
		if err != nil {
			return nil, err
		}
		r.Objects = append(r.Objects, u)
	}
	return r, nil
}

// corednsPod is the CoreDNS Pod: kubeadm's, spread over nodes, tolerating
// the control-plane taint, as a non-root user.
func corednsPod(image string, labels map[string]string) corev1.PodSpec {
	port := func(name string, n int32, proto corev1.Protocol) corev1.ContainerPort {
		return corev1.ContainerPort{Name: name, ContainerPort: n, Protocol: proto}
	}
	probe := func(path, port string) corev1.ProbeHandler {
		return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString(port), Scheme: corev1.URISchemeHTTP}}
	}
	return corev1.PodSpec{
		PriorityClassName:  "system-cluster-critical",
		ServiceAccountName: corednsName,
		// Upstream resolvers are the node's: CoreDNS forwards to its
		// /etc/resolv.conf.
		DNSPolicy: corev1.DNSDefault,
		Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
				Weight: 100,
				PodAffinityTerm: corev1.PodAffinityTerm{
					LabelSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
						Key: corednsAppLabel, Operator: metav1.LabelSelectorOpIn, Values: []string{labels[corednsAppLabel]},
					}}},
					TopologyKey: corev1.LabelHostname,
				},
			}},
		}},
		Tolerations: []corev1.Toleration{
			{Key: "CriticalAddonsOnly", Operator: corev1.TolerationOpExists},
			{Key: controlPlaneTaint, Effect: corev1.TaintEffectNoSchedule},
		},
		NodeSelector: map[string]string{corev1.LabelOSStable: "linux"},
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot: ptrTo(true),
			Sysctls:      []corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: fmt.Sprint(corednsDNSPort)}},
		},
		Containers: []corev1.Container{{
			Name:            corednsName,
			Image:           image,
			ImagePullPolicy: corev1.PullIfNotPresent,
			Args:            []string{"-conf", corednsConfigDir + "/" + corednsCorefileKey},
			Resources: corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("170Mi")},
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("70Mi")},
			},
			VolumeMounts: []corev1.VolumeMount{{Name: "config-volume", MountPath: corednsConfigDir, ReadOnly: true}},
			Ports: []corev1.ContainerPort{
				port("dns", corednsDNSPort, corev1.ProtocolUDP),
				port("dns-tcp", corednsDNSPort, corev1.ProtocolTCP),
				port("metrics", corednsMetricsPort, corev1.ProtocolTCP),
				port("liveness-probe", corednsHealthPort, corev1.ProtocolTCP),
				port("readiness-probe", corednsReadyPort, corev1.ProtocolTCP),
			},
			LivenessProbe: &corev1.Probe{
				ProbeHandler:        probe("/health", "liveness-probe"),
				InitialDelaySeconds: 60, TimeoutSeconds: 5, SuccessThreshold: 1, FailureThreshold: 5,
			},
			ReadinessProbe: &corev1.Probe{ProbeHandler: probe("/ready", "readiness-probe")},
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptrTo(false),
				ReadOnlyRootFilesystem:   ptrTo(true),
				Capabilities: &corev1.Capabilities{
					Add:  []corev1.Capability{"NET_BIND_SERVICE"},
					Drop: []corev1.Capability{"ALL"},
				},
			},
		}},
		Volumes: []corev1.Volume{{
			Name: "config-volume",
			VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: corednsName},
				Items:                []corev1.KeyToPath{{Key: corednsCorefileKey, Path: corednsCorefileKey}},
			}},
		}},
	}
}

// corefileDirective is a line of a Corefile and, if it opens a block, the
// block's lines.
type corefileDirective struct {
	line  string
	block []string
}

// corefile is kubeadm's default Corefile for the cluster domain: byte for
// byte, so that kubeadm's upgrade checks (and a person comparing) see
// kubeadm's default configuration.
func corefile(domain string) string {
	server := []corefileDirective{
		{line: "errors"},
		{line: "health", block: []string{"lameduck 5s"}},
		{line: "ready"},
		{line: "kubernetes " + domain + " in-addr.arpa ip6.arpa", block: []string{"pods insecure", "fallthrough in-addr.arpa ip6.arpa", "ttl 30"}},
		{line: fmt.Sprintf("prometheus :%d", corednsMetricsPort)},
		{line: "forward . /etc/resolv.conf", block: []string{"max_concurrent 1000"}},
		// Answers from the cluster domain are never cached: the
		// kubernetes plugin is authoritative and fast.
		{line: "cache 30", block: []string{"disable success " + domain, "disable denial " + domain}},
		{line: "loop"},
		{line: "reload"},
		{line: "loadbalance"},
	}
	// kubeadm's indentation: 4 spaces in the server block, 3 more in a
	// plugin's.
	var b strings.Builder
	fmt.Fprintf(&b, ".:%d {\n", corednsDNSPort)
	for _, d := range server {
		if d.block == nil {
			fmt.Fprintf(&b, "    %s\n", d.line)
			continue
		}
		fmt.Fprintf(&b, "    %s {\n", d.line)
		for _, l := range d.block {
			fmt.Fprintf(&b, "       %s\n", l)
		}
		b.WriteString("    }\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// hasTag reports whether an image reference names a tag (with or without
// a digest): registry/path/name:tag[@sha256:…].
func hasTag(ref string) bool {
	name := ref[strings.LastIndex(ref, "/")+1:]
	name, _, _ = strings.Cut(name, "@")
	_, tag, ok := strings.Cut(name, ":")
	return ok && tag != ""
}

// toUnstructured converts a typed object for applying, without what the
// server owns: the zero creation timestamps and the status.
func toUnstructured(typed runtime.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(typed)
	if err != nil {
		return nil, fmt.Errorf("converting %T: %w", typed, err)
	}
	u := &unstructured.Unstructured{Object: m}
	delete(m, "status")
	unstructured.RemoveNestedField(m, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(m, "spec", "template", "metadata", "creationTimestamp")
	return u, nil
}

func ptrTo[T any](v T) *T { return &v }
