package certrenew

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/installer/pki"
)

// RenewCAOptions configure `installer pki renew-ca`.
type RenewCAOptions struct {
	// RootKeys is a directory with each realm's root key at
	// REALM/root.key: the layout of layout.PKIDir, so a copy of that
	// directory taken off the node (R25) works as is. Default:
	// layout.PKIDir, for root
	// keys that never left the node.
	RootKeys string
	// Passphrase decrypts the root keys (--root-passphrase-file).
	Passphrase pki.Passphrase
	// Force renews every intermediate, due or not.
	Force bool
	// Threshold is the part of an intermediate's life left at which it
	// is renewed (default pki.DefaultRotationThreshold: month 8 of 12).
	Threshold float64
	// Root prefixes every path (tests).
	Root string
	Now  func() time.Time
	Log  *slog.Logger
}

// RenewedCA is one realm's intermediate CA, as RenewCAs left it.
type RenewedCA struct {
	Realm   string    `json:"realm"`
	Renewed bool      `json:"renewed"`
	Before  time.Time `json:"notAfterBefore"`
	// NotAfter is the intermediate's end of validity now.
	NotAfter time.Time `json:"notAfter"`
}

// RenewCAs renews the intermediate CAs of this control-plane node's
// realms that are due (or all, with Force) from their offline roots,
// keeping each intermediate's key: every leaf, kubeconfig and pinned key
// hash stays valid, and only each realm's ca.crt changes. Every due realm
// is renewed in memory before anything is written, so a wrong passphrase
// or a missing root key changes nothing. The new certificates reach
// kubeadm's copies with the next apply (the caller runs it); leaves carry
// the new intermediate from their next rotation. Each control plane holds
// its own copy of the realms: run it on every one.
func RenewCAs(o RenewCAOptions) ([]RenewedCA, error) {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Threshold == 0 {
		o.Threshold = pki.DefaultRotationThreshold
	}
	if o.RootKeys == "" {
		o.RootKeys = filepath.Join(o.Root, layout.PKIDir)
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	type due struct {
		realm *pki.Realm
		dir   string
		i     int
	}
	var out []RenewedCA
	var todo []due
	for _, name := range pki.Realms {
		dir := filepath.Join(o.Root, layout.PKIDir, name)
		if _, err := os.Stat(filepath.Join(dir, pki.CACertFile)); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		r, err := pki.LoadRealm(dir, nil, pki.Options{Now: o.Now})
		if err != nil {
			return nil, err
		}
		rc := RenewedCA{Realm: name, Before: r.Intermediate.NotAfter.UTC(), NotAfter: r.Intermediate.NotAfter.UTC()}
		if o.Force || pki.NeedsRotation(r.Intermediate, o.Now(), o.Threshold) {
			todo = append(todo, due{r, dir, len(out)})
		}
		out = append(out, rc)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no certificate authority under %s: this is not a control-plane node", filepath.Join(o.Root, layout.PKIDir))
	}
	if len(todo) == 0 {
		return out, nil
	}
	if len(o.Passphrase) == 0 {
		return out, fmt.Errorf("%d intermediate CA(s) to renew: the root keys' passphrase is needed (--root-passphrase-file)", len(todo))
	}
	for _, d := range todo {
		key := filepath.Join(o.RootKeys, d.realm.Name, pki.RootKeyFile)
		if err := d.realm.UnlockRoot(key, o.Passphrase); err != nil {
			return out, fmt.Errorf("%w (root keys from %s; give --root-keys DIR with REALM/root.key)", err, o.RootKeys)
		}
		if err := d.realm.Renew(false); err != nil {
			return out, err
		}
	}
	for _, d := range todo {
		if err := d.realm.WriteCACert(d.dir); err != nil {
			return out, err
		}
		out[d.i].Renewed, out[d.i].NotAfter = true, d.realm.Intermediate.NotAfter.UTC()
		log.Info("intermediate CA renewed", slog.String("realm", d.realm.Name), slog.Time("notAfter", out[d.i].NotAfter))
	}
	return out, nil
}
