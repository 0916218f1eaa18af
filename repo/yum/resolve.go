package yum

import (
	"cmp"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/ferry-k8s/ferry/repo"
	"github.com/ferry-k8s/ferry/repo/rpmver"
)

// Request is what to resolve.
type Request struct {
	// Names are the packages wanted, in the spec's syntax ("socat",
	// "socat >= 1.7.4"; see rpmver.ParseConstraint). A name that no
	// package has is looked up among the provides.
	Names []string
	// Exclude are globs of package names the target OS already has.
	Exclude []string
	// Arches are the architectures to take, in order of preference;
	// default rpmver.DefaultArches.
	Arches []string
}

// Pinned is one package of a resolution.
type Pinned struct {
	Package *repo.Package
	// Repo is the upstream repository's name; URL the package file's.
	Repo, URL string
	// Requested are the Request.Names items the package answers;
	// RequiredBy, when it came in as a dependency, says which package's
	// requirement pulled it in: "pkgA-1.0-1.x86_64 (libfoo.so.1()(64bit))".
	Requested  []string
	RequiredBy string
}

// UnmetError lists every requirement of the closure that nothing meets.
type UnmetError struct {
	// Unmet are lines such as
	// "pkgA-1.0-1.x86_64 requires libfoo.so.1()(64bit): nothing provides it".
	Unmet []string
}

func (e *UnmetError) Error() string {
	return fmt.Sprintf("%d unmet requirement(s):\n  %s", len(e.Unmet), strings.Join(e.Unmet, "\n  "))
}

// cand is a package that may be selected.
type cand struct {
	pkg      *repo.Package
	ix       *Index
	repoRank int // position of its repository in the indexes
	archRank int // position of its arch in Request.Arches; -1: not allowed
	evr      rpmver.EVR
	provides []dep
	excluded bool
}

func (c *cand) nevra() string { return c.pkg.NEVRA() }

// provides reports whether c provides d: by a provide entry (its own
// name and EVR included) or, for a path, by a file.
func (c *cand) satisfies(d dep) bool {
	for _, p := range c.provides {
		if p.name == d.name && rpmver.Overlaps(p.op, p.evr, d.op, d.evr) {
			return true
		}
	}
	if strings.HasPrefix(d.name, "/") && d.op == rpmver.Any {
		for _, f := range c.pkg.Files {
			if f.Path == d.name {
				return true
			}
		}
	}
	return false
}

type resolver struct {
	byName     map[string][]*cand // provide (and file) name → candidates
	selected   []*cand
	isSelected map[*cand]*Pinned
	nameArch   map[string]*cand // selected name.arch → candidate
	queue      []*cand
	exclude    []string
}

// Resolve selects the packages of req and everything they require from the
// indexes (in order of preference). It fails naming every name that
// matches no package and every requirement nothing meets (*UnmetError).
func Resolve(indexes []*Index, req Request) ([]Pinned, error) {
	arches := req.Arches
	if len(arches) == 0 {
		arches = rpmver.DefaultArches
	}
	r := &resolver{byName: map[string][]*cand{}, isSelected: map[*cand]*Pinned{}, nameArch: map[string]*cand{}, exclude: req.Exclude}
	for ri, ix := range indexes {
		for _, p := range ix.Packages {
			c := &cand{pkg: p, ix: ix, repoRank: ri, archRank: slices.Index(arches, p.Arch),
				evr: rpmver.EVR{Epoch: p.Epoch, Version: p.Version, Release: p.Release}, excluded: r.excludedName(p.Name)}
			if c.archRank < 0 && !c.excluded {
				continue // the target OS's own packages count whatever their arch
			}
			c.provides = append(c.provides, dep{name: p.Name, op: rpmver.EQ, evr: c.evr})
			for _, d := range p.Provides {
				c.provides = append(c.provides, fromRepo(d))
			}
			seen := map[string]bool{}
			for _, d := range c.provides {
				if !seen[d.name] {
					r.byName[d.name] = append(r.byName[d.name], c)
					seen[d.name] = true
				}
			}
			for _, f := range p.Files {
				if !seen[f.Path] {
					r.byName[f.Path] = append(r.byName[f.Path], c)
					seen[f.Path] = true
				}
			}
		}
	}
	var errs []error
	for _, n := range req.Names {
		if err := r.request(n, indexes, arches); err != nil {
			errs = append(errs, err)
		}
	}
	r.close()
	if unmet := r.unmet(); len(unmet) > 0 {
		errs = append(errs, &UnmetError{Unmet: unmet})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := make([]Pinned, 0, len(r.selected))
	for _, c := range r.selected {
		out = append(out, *r.isSelected[c])
	}
	slices.SortFunc(out, func(a, b Pinned) int {
		return cmp.Or(cmp.Compare(a.Package.Name, b.Package.Name), cmp.Compare(a.Package.Arch, b.Package.Arch),
			rpmver.CompareEVR(evrOf(a.Package), evrOf(b.Package)), cmp.Compare(a.Repo, b.Repo))
	})
	return out, nil
}

func evrOf(p *repo.Package) rpmver.EVR {
	return rpmver.EVR{Epoch: p.Epoch, Version: p.Version, Release: p.Release}
}

func (r *resolver) excludedName(name string) bool {
	for _, g := range r.exclude {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

// request selects the best package for one Request.Names item: the highest
// version of that name satisfying the constraint, else the best provider.
func (r *resolver) request(item string, indexes []*Index, arches []string) error {
	c, err := rpmver.ParseConstraint(item)
	if err != nil {
		return err
	}
	want := dep{name: c.Name}
	if c.Op != "" {
		if want.op, err = rpmver.ParseOp(c.Op); err != nil {
			return fmt.Errorf("%s: %w", item, err)
		}
		if want.evr, err = rpmver.ParseEVR(c.EVR); err != nil {
			return fmt.Errorf("%s: %w", item, err)
		}
	}
	var best *cand
	var others []string
	for _, k := range r.byName[c.Name] {
		if k.pkg.Name != c.Name || k.archRank < 0 || k.excluded {
			continue
		}
		if !rpmver.Overlaps(rpmver.EQ, k.evr, want.op, want.evr) {
			others = append(others, k.nevra())
			continue
		}
		if best == nil || newer(k, best) {
			best = k
		}
	}
	if best == nil && len(others) == 0 {
		best = r.bestProvider(want) // a virtual name
	}
	if best == nil {
		var names []string
		for _, ix := range indexes {
			names = append(names, ix.Repo.Name)
		}
		msg := fmt.Sprintf("%s: no package matches in repositories %s (arches %s)", item, strings.Join(names, ", "), strings.Join(arches, ", "))
		if len(others) > 0 {
			slices.Sort(others)
			msg += "; there are " + strings.Join(others, ", ")
		}
		return errors.New(msg)
	}
	if other, clash := r.nameArch[best.pkg.Name+"."+best.pkg.Arch]; clash && other != best {
		return fmt.Errorf("%s: selects %s, but %s is selected already", item, best.nevra(), other.nevra())
	}
	p := r.selectCand(best, "")
	p.Requested = append(p.Requested, item)
	return nil
}

// newer orders candidates of one name: higher EVR, then earlier
// repository, then preferred arch.
func newer(a, b *cand) bool {
	if c := rpmver.CompareEVR(a.evr, b.evr); c != 0 {
		return c > 0
	}
	if a.repoRank != b.repoRank {
		return a.repoRank < b.repoRank
	}
	return a.archRank < b.archRank
}

// betterProvider orders providers of a requirement: earlier repository,
// then higher version, then name, then preferred arch.
func betterProvider(a, b *cand) bool {
	if a.repoRank != b.repoRank {
		return a.repoRank < b.repoRank
	}
	if c := rpmver.CompareEVR(a.evr, b.evr); c != 0 {
		return c > 0
	}
	if a.pkg.Name != b.pkg.Name {
		return a.pkg.Name < b.pkg.Name
	}
	return a.archRank < b.archRank
}

func (r *resolver) selectCand(c *cand, requiredBy string) *Pinned {
	if p, ok := r.isSelected[c]; ok {
		return p
	}
	p := &Pinned{Package: c.pkg, Repo: c.ix.Repo.Name, URL: c.ix.URL(c.pkg), RequiredBy: requiredBy}
	r.isSelected[c] = p
	r.selected = append(r.selected, c)
	r.nameArch[c.pkg.Name+"."+c.pkg.Arch] = c
	r.queue = append(r.queue, c)
	return p
}

// close follows the requirements of everything selected until nothing more
// is added: a conditional requirement may start to apply when a later
// package is selected.
func (r *resolver) close() {
	for {
		for len(r.queue) > 0 {
			c := r.queue[0]
			r.queue = r.queue[1:]
			for _, d := range c.pkg.Requires {
				r.require(c, d)
			}
		}
		before := len(r.selected)
		for _, c := range slices.Clone(r.selected) {
			for _, d := range c.pkg.Requires {
				if strings.HasPrefix(d.Name, "(") {
					r.require(c, d)
				}
			}
		}
		if len(r.selected) == before && len(r.queue) == 0 {
			return
		}
	}
}

func (r *resolver) require(c *cand, d repo.Dependency) {
	if strings.HasPrefix(d.Name, "rpmlib(") {
		return // features of rpm itself
	}
	by := func(what string) string { return c.nevra() + " (" + what + ")" }
	if strings.HasPrefix(d.Name, "(") {
		n, err := parseRich(d.Name)
		if err != nil {
			return // reported by unmet
		}
		if !r.met(n) {
			r.satisfy(n, by(d.Name))
		}
		return
	}
	sd := fromRepo(d)
	if !r.metLeaf(sd) {
		if p := r.bestProvider(sd); p != nil {
			r.selectCand(p, by(sd.String()))
		}
	}
}

// metLeaf: a selected package or one of the target OS provides d, or the
// target OS has a package of that name.
func (r *resolver) metLeaf(d dep) bool {
	if r.excludedName(d.name) {
		return true
	}
	for _, k := range r.byName[d.name] {
		if (k.excluded || r.isSelected[k] != nil) && k.satisfies(d) {
			return true
		}
	}
	return false
}

// bestProvider is the candidate that would be selected for d, or nil: not
// excluded, allowed arch, and not another version of a selected name.arch.
func (r *resolver) bestProvider(d dep) *cand {
	var best *cand
	for _, k := range r.byName[d.name] {
		if k.excluded || k.archRank < 0 || !k.satisfies(d) {
			continue
		}
		if other, ok := r.nameArch[k.pkg.Name+"."+k.pkg.Arch]; ok && other != k {
			continue
		}
		if best == nil || betterProvider(k, best) {
			best = k
		}
	}
	return best
}

// met evaluates a rich dependency against what is selected and what the
// target OS has.
func (r *resolver) met(n *node) bool {
	switch n.op {
	case "":
		return r.metLeaf(n.leaf)
	case "and":
		for _, a := range n.args {
			if !r.met(a) {
				return false
			}
		}
		return true
	case "or":
		for _, a := range n.args {
			if r.met(a) {
				return true
			}
		}
		return false
	case "if":
		if r.met(n.args[1]) {
			return r.met(n.args[0])
		}
		return n.alt == nil || r.met(n.alt)
	case "unless":
		if !r.met(n.args[1]) {
			return r.met(n.args[0])
		}
		return n.alt == nil || r.met(n.alt)
	case "with", "without":
		return r.findWith(n, true) != nil
	}
	return false
}

// findWith finds a package that satisfies the first argument of a with
// (every argument) or without (the first and not the second) dependency:
// among the selected and the target OS's packages when present, else the
// best candidate to select.
func (r *resolver) findWith(n *node, present bool) *cand {
	if len(n.args) < 2 || n.args[0].op != "" {
		return nil
	}
	ok := func(k *cand) bool {
		for i, a := range n.args {
			if a.op != "" {
				return false
			}
			has := k.satisfies(a.leaf)
			if n.op == "without" && i > 0 {
				has = !has
			}
			if !has {
				return false
			}
		}
		return true
	}
	var best *cand
	for _, k := range r.byName[n.args[0].leaf.name] {
		inPlace := k.excluded || r.isSelected[k] != nil
		if present != inPlace || !ok(k) {
			continue
		}
		if present {
			return k
		}
		if k.archRank < 0 {
			continue
		}
		if other, clash := r.nameArch[k.pkg.Name+"."+k.pkg.Arch]; clash && other != k {
			continue
		}
		if best == nil || betterProvider(k, best) {
			best = k
		}
	}
	return best
}

// canSatisfy tells, without selecting anything, whether satisfy(n) would
// succeed.
func (r *resolver) canSatisfy(n *node) bool {
	if r.met(n) {
		return true
	}
	switch n.op {
	case "":
		return r.bestProvider(n.leaf) != nil
	case "and":
		for _, a := range n.args {
			if !r.canSatisfy(a) {
				return false
			}
		}
		return true
	case "or":
		return slices.ContainsFunc(n.args, r.canSatisfy)
	case "if":
		if r.met(n.args[1]) {
			return r.canSatisfy(n.args[0])
		}
		return n.alt == nil || r.canSatisfy(n.alt)
	case "unless":
		if !r.met(n.args[1]) {
			return r.canSatisfy(n.args[0])
		}
		return n.alt == nil || r.canSatisfy(n.alt)
	case "with", "without":
		return r.findWith(n, false) != nil
	}
	return false
}

// satisfy selects what n needs (the first satisfiable alternative of an
// or). Conditions are evaluated against the current selection; close
// revisits them.
func (r *resolver) satisfy(n *node, by string) {
	if r.met(n) {
		return
	}
	switch n.op {
	case "":
		if p := r.bestProvider(n.leaf); p != nil {
			r.selectCand(p, by)
		}
	case "and":
		for _, a := range n.args {
			r.satisfy(a, by)
		}
	case "or":
		for _, a := range n.args {
			if r.canSatisfy(a) {
				r.satisfy(a, by)
				return
			}
		}
	case "if":
		if r.met(n.args[1]) {
			r.satisfy(n.args[0], by)
		} else if n.alt != nil {
			r.satisfy(n.alt, by)
		}
	case "unless":
		if !r.met(n.args[1]) {
			r.satisfy(n.args[0], by)
		} else if n.alt != nil {
			r.satisfy(n.alt, by)
		}
	case "with", "without":
		if k := r.findWith(n, false); k != nil {
			r.selectCand(k, by)
		}
	}
}

// unmet lists the requirements of the selected packages nothing meets, in
// selection order.
func (r *resolver) unmet() []string {
	var out []string
	for _, c := range r.selected {
		for _, d := range c.pkg.Requires {
			if strings.HasPrefix(d.Name, "rpmlib(") {
				continue
			}
			var what string
			var ok bool
			if strings.HasPrefix(d.Name, "(") {
				n, err := parseRich(d.Name)
				if err != nil {
					out = append(out, fmt.Sprintf("%s requires %s: %v", c.nevra(), d.Name, err))
					continue
				}
				what, ok = d.Name, r.met(n)
			} else {
				sd := fromRepo(d)
				what, ok = sd.String(), r.metLeaf(sd)
			}
			if !ok {
				out = append(out, fmt.Sprintf("%s requires %s: %s", c.nevra(), what, r.why(d)))
			}
		}
	}
	return out
}

// why explains an unmet requirement.
func (r *resolver) why(d repo.Dependency) string {
	if strings.HasPrefix(d.Name, "(") {
		return "no combination of packages meets it"
	}
	sd := fromRepo(d)
	for _, k := range r.byName[sd.name] {
		if k.excluded || k.archRank < 0 || !k.satisfies(sd) {
			continue
		}
		if other, ok := r.nameArch[k.pkg.Name+"."+k.pkg.Arch]; ok && other != k {
			return fmt.Sprintf("%s provides it, but %s is selected", k.nevra(), other.nevra())
		}
	}
	return "nothing provides it"
}
