package nodeconfig

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strings"

	"github.com/ferry-k8s/ferry/installer/cluster"
)

// encryptionConfig is the API server's EncryptionConfiguration (R9): the
// configured resources are written with the configured provider and the
// install-time key; identity comes last so that data stored before
// encryption was on can still be read (and is rewritten encrypted). The
// key's name is derived from the key, so a new key gets a new name. The
// file belongs to the API server's user, mode 0600.
func (r *renderer) encryptionConfig() (File, error) {
	sum := sha256.Sum256(r.f.EncryptionKey)
	key := map[string]any{
		"name":   "ferry-" + hex.EncodeToString(sum[:4]),
		"secret": base64.StdEncoding.EncodeToString(r.f.EncryptionKey),
	}
	provider := r.c.Spec.EncryptionAtRest.Provider
	doc := map[string]any{
		"apiVersion": "apiserver.config.k8s.io/v1",
		"kind":       "EncryptionConfiguration",
		"resources": []any{map[string]any{
			"resources": encryptionResources(r.c.Spec.EncryptionAtRest.Resources),
			"providers": []any{
				map[string]any{provider: map[string]any{"keys": []any{key}}},
				map[string]any{"identity": map[string]any{}},
			},
		}},
	}
	body, err := yamlDocs(doc)
	if err != nil {
		return File{}, err
	}
	f := r.rootFile(0o600, body)
	f.Owner, f.Group, f.Secret = KubeAPIServerUser.Name, KubeAPIServerUser.Name, true
	return f, nil
}

// encryptionResources are the configured resources as the API server
// takes them in one list: none masked by a wildcard also listed ("secrets"
// with "*." or "*.*", "widgets.example.com" with "*.example.com"), which
// it refuses; named resources first, then group wildcards, then "*.".
func encryptionResources(rs []string) []string {
	if slices.Contains(rs, "*.*") {
		return []string{"*.*"}
	}
	rank := func(s string) int {
		switch {
		case s == "*.":
			return 2
		case strings.HasPrefix(s, "*."):
			return 1
		}
		return 0
	}
	var out []string
	for _, r := range rs {
		if name, group, _ := strings.Cut(r, "."); name != "*" && slices.Contains(rs, "*."+group) {
			continue // covered by its group's wildcard
		}
		out = append(out, r)
	}
	slices.SortStableFunc(out, func(a, b string) int { return rank(a) - rank(b) })
	return out
}

// authenticationConfig is the API server's AuthenticationConfiguration:
// anonymous requests reach /livez, /readyz and /healthz only (the
// kubelet's probes of the static Pod, and kubeadm's wait for the control
// plane; R27), and spec.authentication.oidc, when set, is the JWT
// authenticator (R17). Client certificates need no configuration here.
func (r *renderer) authenticationConfig() (File, error) {
	jwt := []any{}
	if o := r.c.Spec.Authentication.OIDC; o != nil {
		issuer := map[string]any{"url": o.IssuerURL, "audiences": []string{o.ClientID}}
		if o.CAFile != "" {
			issuer["certificateAuthority"] = string(r.f.OIDCCA)
		}
		jwt = append(jwt, map[string]any{
			"issuer":        issuer,
			"claimMappings": oidcClaimMappings(o),
		})
	}
	doc := map[string]any{
		"apiVersion": "apiserver.config.k8s.io/v1",
		"kind":       "AuthenticationConfiguration",
		"anonymous": map[string]any{
			"enabled": true,
			"conditions": []any{
				map[string]any{"path": "/healthz"},
				map[string]any{"path": "/livez"},
				map[string]any{"path": "/readyz"},
			},
		},
		"jwt": jwt,
	}
	body, err := yamlDocs(doc)
	if err != nil {
		return File{}, err
	}
	return r.rootFile(0o644, body), nil
}

// oidcClaimMappings maps the claims as the API server's --oidc-* flags
// did: without a usernamePrefix, a username claim other than email is
// prefixed with the issuer URL and '#'.
func oidcClaimMappings(o *cluster.OIDC) map[string]any {
	prefix := o.UsernamePrefix
	if prefix == "" && o.UsernameClaim != "email" {
		prefix = o.IssuerURL + "#"
	}
	m := map[string]any{"username": map[string]any{"claim": o.UsernameClaim, "prefix": prefix}}
	if o.GroupsClaim != "" {
		m["groups"] = map[string]any{"claim": o.GroupsClaim, "prefix": o.GroupsPrefix}
	}
	return m
}
