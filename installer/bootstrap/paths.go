package bootstrap

import (
	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/layout"
)

// The node's paths and ports, as installer/layout and installer/cluster
// define them (short names for this package's many uses).
const (
	StateDir            = layout.StateDir
	BundlesDir          = layout.BundlesDir
	ClusterConfig       = layout.ClusterConfig
	KeyringFile         = layout.KeyringFile
	EncryptionKey       = layout.EncryptionKey
	ModeFile            = layout.ModeFile
	TargetFile          = layout.TargetFile
	IgnorePreflightFile = layout.IgnorePreflightFile
	PKIDir              = layout.PKIDir
	KubernetesPKI       = layout.KubernetesPKI
	APIProxyServer      = layout.APIProxyServer
	ContentPort         = cluster.ContentPort
	kubeProxyCert       = layout.KubeProxyCert
	kubeProxyKey        = layout.KubeProxyKey
)
