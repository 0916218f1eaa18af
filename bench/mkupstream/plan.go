package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/ferry-k8s/ferry/repo/rpmtest"
)

// A package of the upstream repository. The repository holds, for n RPMs:
//
//	tools  n/16   ut-tool-NN   2–24 MiB  x86_64  the names the spec asks for
//	libs   ~2/5   ut-lib-NNN   48 KiB–2 MiB x86_64, provide libutNNN.so.1()(64bit)
//	bases  rest   ut-base-NNN  8–384 KiB, half noarch, some with /usr/bin/ut-base-NNN
//	old    n/10   older versions (1.0) of the first libs and bases (2.0)
//
// Tools require 3–6 libs (by soname, by name or "name >= 2.0") and some a
// file (/usr/bin/ut-base-NNN); libs require 1–3 bases and sometimes a later
// lib; bases sometimes a later base; ut-lib-000 and ut-lib-001 require each
// other. Sizes are log-uniform in their range. Everything comes from one
// fixed seed, so the plan (and the repository) is the same on every run.
type plannedRPM struct {
	Spec rpmtest.Spec
	// Size is the payload's size in bytes (one file of pseudo-random data).
	Size int
	// Tool marks the packages the spec names.
	Tool bool
}

// plan lays out n packages (at least 16); scale multiplies every payload
// size (1 for the benchmark, less for tests).
func plan(n int, scale float64) ([]plannedRPM, error) {
	if n < 16 {
		return nil, fmt.Errorf("at least 16 packages are needed, not %d", n)
	}
	if scale <= 0 || scale > 16 {
		return nil, fmt.Errorf("size scale %g is out of (0, 16]", scale)
	}
	r := rand.New(rand.NewPCG(20261121, 1))
	const kib, mib = 1 << 10, 1 << 20
	logUniform := func(lo, hi float64) int {
		return max(1, int(scale*lo*math.Pow(hi/lo, r.Float64())))
	}
	nTool := n / 16
	nOld := n / 10
	nLib := (n - nTool - nOld) * 2 / 5
	nBase := n - nTool - nOld - nLib
	libName := func(i int) string { return fmt.Sprintf("ut-lib-%03d", i) }
	baseName := func(i int) string { return fmt.Sprintf("ut-base-%03d", i) }
	soname := func(i int) string { return fmt.Sprintf("libut%03d.so.1()(64bit)", i) }
	// The first nOld/2 libs and nOld-nOld/2 bases also exist as 1.0.
	oldLibs, oldBases := nOld/2, nOld-nOld/2

	var out []plannedRPM
	// Bases: some ship a program other packages require by path.
	baseHasBin := make([]bool, nBase)
	for i := range nBase {
		name := baseName(i)
		s := rpmtest.Spec{Name: name, Version: "2.0", Release: "1", Arch: "noarch",
			Provides: []string{fmt.Sprintf("ut-base-cap-%03d = 2.0", i)}}
		if i%2 == 1 {
			s.Arch = "x86_64"
		}
		if i+1 < nBase && r.IntN(4) == 0 {
			s.Requires = append(s.Requires, baseName(i+1+r.IntN(nBase-i-1)))
		}
		size := logUniform(8*kib, 384*kib)
		s.Files = map[string][]byte{"/usr/share/" + name + "/data": nil}
		if i%5 == 0 {
			baseHasBin[i] = true
			s.Files["/usr/bin/"+name] = []byte("#!/bin/sh\necho " + name + "\n")
		}
		out = append(out, plannedRPM{Spec: s, Size: size})
	}
	for i := range nLib {
		s := rpmtest.Spec{Name: libName(i), Version: "2.0", Release: "1", Arch: "x86_64",
			Provides: []string{soname(i)}}
		for _, b := range pick(r, nBase, 1+r.IntN(3)) {
			if r.IntN(3) == 0 {
				s.Requires = append(s.Requires, fmt.Sprintf("ut-base-cap-%03d >= 2.0", b))
			} else {
				s.Requires = append(s.Requires, baseName(b))
			}
		}
		if i+1 < nLib && r.IntN(10) < 3 {
			s.Requires = append(s.Requires, soname(i+1+r.IntN(nLib-i-1)))
		}
		switch i {
		case 0:
			s.Requires = append(s.Requires, libName(1))
		case 1:
			s.Requires = append(s.Requires, libName(0))
		}
		s.Files = map[string][]byte{fmt.Sprintf("/usr/lib64/libut%03d.so.1", i): nil}
		out = append(out, plannedRPM{Spec: s, Size: logUniform(48*kib, 2*mib)})
	}
	var binBases []int
	for i, ok := range baseHasBin {
		if ok {
			binBases = append(binBases, i)
		}
	}
	for i := range nTool {
		name := fmt.Sprintf("ut-tool-%02d", i)
		s := rpmtest.Spec{Name: name, Version: "1.35.0", Release: "1", Arch: "x86_64"}
		for _, l := range pick(r, nLib, 3+r.IntN(4)) {
			switch k := r.IntN(10); {
			case k < 6:
				s.Requires = append(s.Requires, soname(l))
			case k < 9:
				s.Requires = append(s.Requires, libName(l))
			default:
				s.Requires = append(s.Requires, libName(l)+" >= 2.0")
			}
		}
		if i%3 == 0 && len(binBases) > 0 {
			s.Requires = append(s.Requires, "/usr/bin/"+baseName(binBases[r.IntN(len(binBases))]))
		}
		s.Files = map[string][]byte{"/usr/bin/" + name: nil}
		out = append(out, plannedRPM{Spec: s, Size: logUniform(2*mib, 24*mib), Tool: true})
	}
	// Older versions: same name, fewer requirements; never the pick.
	var olds []plannedRPM
	for _, p := range out {
		isOldLib := strings.HasPrefix(p.Spec.Name, "ut-lib-") && libIndex(p.Spec.Name) < oldLibs
		isOldBase := strings.HasPrefix(p.Spec.Name, "ut-base-") && libIndex(p.Spec.Name) < oldBases
		if !isOldLib && !isOldBase {
			continue
		}
		s := p.Spec
		s.Version = "1.0"
		s.Requires = nil
		s.Provides = slices.Clone(s.Provides)
		for j, pr := range s.Provides {
			s.Provides[j] = strings.Replace(pr, "= 2.0", "= 1.0", 1)
		}
		olds = append(olds, plannedRPM{Spec: s, Size: p.Size})
	}
	return append(out, olds...), nil
}

// libIndex is the number at the end of a planned name.
func libIndex(name string) int {
	var i int
	_, _ = fmt.Sscanf(name[strings.LastIndex(name, "-")+1:], "%d", &i)
	return i
}

// pick returns k distinct numbers of [0, n), sorted.
func pick(r *rand.Rand, n, k int) []int {
	k = min(k, n)
	out := r.Perm(n)[:k]
	slices.Sort(out)
	return out
}

// closure is what a resolver must pick for the tools: the file names of
// every package the tools need, directly or not, sorted. It fails when a
// requirement has no provider, or more than one name provides it (the
// benchmark's repository must leave a resolver no choice, so that dnf and
// Ferry can be compared file for file).
func closure(pkgs []plannedRPM) ([]string, error) {
	// Providers of each capability among the newest versions.
	newest := map[string]int{}
	for i, p := range pkgs {
		if j, ok := newest[p.Spec.Name]; !ok || p.Spec.Version > pkgs[j].Spec.Version {
			newest[p.Spec.Name] = i
		}
	}
	provides := map[string][]int{}
	add := func(cap string, i int) {
		if !slices.Contains(provides[cap], i) {
			provides[cap] = append(provides[cap], i)
		}
	}
	for _, i := range newest {
		p := pkgs[i].Spec
		add(p.Name, i)
		for _, pr := range p.Provides {
			add(strings.Fields(pr)[0], i)
		}
		for f := range p.Files {
			add(f, i)
		}
	}
	seen := map[int]bool{}
	var queue []int
	for i, p := range pkgs {
		if p.Tool {
			seen[i] = true
			queue = append(queue, i)
		}
	}
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		for _, req := range pkgs[i].Spec.Requires {
			cap := strings.Fields(req)[0]
			prov := provides[cap]
			if len(prov) != 1 {
				return nil, fmt.Errorf("%s requires %s: %d providers, want 1", pkgs[i].Spec.Name, req, len(prov))
			}
			if !seen[prov[0]] {
				seen[prov[0]] = true
				queue = append(queue, prov[0])
			}
		}
	}
	var files []string
	for i := range seen {
		files = append(files, rpmtest.FileName(pkgs[i].Spec))
	}
	slices.Sort(files)
	return files, nil
}

// A plannedImage is pushed to the registry as bench/<Repo>:<Tag>.
type plannedImage struct {
	Repo, Tag string
	Seed      int64
	// Layers are the uncompressed sizes; imagetest compresses about 3/4 of
	// each not at all (random bytes) and the rest well (text).
	Layers []int64
}

// images is a control plane's worth of images, as a Kubernetes node pulls
// them: the kube-* images share a base and a second layer (same seed, same
// size at the same index gives the same layer), etcd and coredns share the
// base; about 265 MB of compressed blobs at scale 1.
func images(scale float64) []plannedImage {
	const mib = 1 << 20
	m := func(sizes ...float64) []int64 {
		out := make([]int64, len(sizes))
		for i, s := range sizes {
			out[i] = max(1024, int64(s*mib*scale))
		}
		return out
	}
	return []plannedImage{
		{"pause", "3.10", 2, m(0.25)},
		{"coredns", "v1.12.1", 1, m(2, 18)},
		{"etcd", "3.6.5-0", 1, m(2, 20, 40)},
		{"kube-apiserver", "v1.35.0", 1, m(2, 6, 30)},
		{"kube-controller-manager", "v1.35.0", 1, m(2, 6, 26)},
		{"kube-scheduler", "v1.35.0", 1, m(2, 6, 20)},
		{"kube-proxy", "v1.35.0", 3, m(12, 8, 22)},
		{"cni-node", "v3.30.0", 4, m(30, 60, 40)},
	}
}
