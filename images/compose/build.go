package compose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// builder assembles the file tree of one image.
type builder struct {
	job    *job
	tree   *tree
	spool  *spool
	sel    *selector
	nevras []string
}

// linkGroup is a set of regular files of one package that are hard links
// to each other (same device and inode in the header).
type linkGroup struct {
	last  int  // highest file index: the one a stripped payload gives content to
	keep  bool // some member is selected
	have  bool // content spooled
	off   int64
	sum   [32]byte
	nodes []*node // selected members
}

// addPackage reads one RPM and adds its selected payload entries.
func (b *builder) addPackage(ctx context.Context, file string) error {
	f, pkg, err := openPackage(file)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := checkArch(pkg.arch, b.job.platform.Architecture); err != nil {
		return fmt.Errorf("%s: %w", pkg, err)
	}
	b.nevras = append(b.nevras, pkg.nevra)

	// Check every path and type first, select, and group hard links.
	n := len(pkg.files)
	rels := make([]string, n)
	selected := make([]bool, n)
	groupOf := make([]*linkGroup, n)
	type inode struct{ dev, ino uint64 }
	groups := map[inode]*linkGroup{}
	byPath := make(map[string]int, n)
	for i := range pkg.files {
		fi := &pkg.files[i]
		if _, dup := byPath[fi.path]; dup {
			return fmt.Errorf("%s: %s listed twice in the header", pkg, fi.path)
		}
		byPath[fi.path] = i
		if fi.ghost() {
			continue
		}
		rel, err := cleanPath(fi.path)
		if err != nil {
			return fmt.Errorf("%s: %w", pkg, err)
		}
		rels[i] = rel
		switch fi.mode & modeType {
		case modeDir:
		case modeReg:
			if fi.ino != 0 {
				k := inode{fi.dev, fi.ino}
				g := groups[k]
				if g == nil {
					g = &linkGroup{}
					groups[k] = g
				}
				g.last = i
				groupOf[i] = g
			}
		case modeSymlink:
			if err := checkLinkTarget(fi.linkTo); err != nil {
				return fmt.Errorf("%s: %s: %w", pkg, fi.path, err)
			}
			if fi.size != int64(len(fi.linkTo)) {
				return fmt.Errorf("%s: %s: symlink size %d does not match its target %q", pkg, fi.path, fi.size, fi.linkTo)
			}
		default:
			return fmt.Errorf("%s: %s: unsupported file type (mode %06o)", pkg, fi.path, fi.mode)
		}
		if rel == "" {
			if fi.mode&modeType != modeDir {
				return fmt.Errorf("%s: the root directory is not a directory", pkg)
			}
			continue
		}
		selected[i] = b.sel.match(rel)
		if g := groupOf[i]; g != nil && selected[i] {
			g.keep = true
		}
	}
	strippedSize := func(idx int) (int64, error) {
		if idx < 0 || idx >= n {
			return 0, fmt.Errorf("file index %d out of range (%d files)", idx, n)
		}
		fi := &pkg.files[idx]
		if fi.ghost() {
			return 0, fmt.Errorf("%s: ghost file in the payload", fi.path)
		}
		switch fi.mode & modeType {
		case modeReg:
			if g := groupOf[idx]; g != nil && g.last != idx {
				return 0, nil
			}
			return fi.size, nil
		case modeSymlink:
			return fi.size, nil
		}
		return 0, nil
	}

	payload, closeDec, err := decompress(pkg.compressor, io.NewSectionReader(f, pkg.payloadOff, pkg.size-pkg.payloadOff))
	if err != nil {
		return fmt.Errorf("%s: %w", pkg, err)
	}
	defer closeDec()
	cr := newCpioReader(payload, strippedSize)
	seen := make([]bool, n)
	var kept []*node
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		e, err := cr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: payload: %w", pkg, err)
		}
		idx := e.index
		if idx < 0 {
			name := e.name
			if strings.HasPrefix(name, "./") {
				name = name[1:]
			}
			i, ok := byPath[name]
			if !ok {
				return fmt.Errorf("%s: payload entry %q is not in the header", pkg, e.name)
			}
			idx = i
		}
		if seen[idx] {
			return fmt.Errorf("%s: payload: %s appears twice", pkg, pkg.files[idx].path)
		}
		seen[idx] = true
		fi := &pkg.files[idx]
		if fi.ghost() {
			continue // rpm < 4.11 sometimes wrote ghosts; their data is skipped
		}
		rel := rels[idx]
		nd := &node{path: rel, perm: fi.mode & modePerm, user: fi.user, group: fi.group, src: pkg.String()}
		switch fi.mode & modeType {
		case modeDir:
			if e.size != 0 {
				return fmt.Errorf("%s: payload: directory %s has %d bytes of data", pkg, fi.path, e.size)
			}
			if rel == "" {
				continue
			}
			nd.kind = kindDir
			if !selected[idx] {
				if _, ok := b.tree.dirs[rel]; !ok {
					b.tree.dirs[rel] = nd
				}
				continue
			}
		case modeSymlink:
			if e.size != fi.size {
				return fmt.Errorf("%s: payload: symlink %s has %d bytes of target, the header says %d", pkg, fi.path, e.size, fi.size)
			}
			target := make([]byte, e.size) // ≤ maxLinkTarget, checked above
			if _, err := io.ReadFull(cr, target); err != nil {
				return fmt.Errorf("%s: payload: symlink %s: %w", pkg, fi.path, noEOF(err))
			}
			if string(target) != fi.linkTo {
				return fmt.Errorf("%s: payload: symlink %s points to %q, the header says %q", pkg, fi.path, target, fi.linkTo)
			}
			nd.kind, nd.link = kindSymlink, fi.linkTo
		case modeReg:
			g := groupOf[idx]
			content := true
			if e.size != fi.size {
				if g == nil || e.size != 0 {
					return fmt.Errorf("%s: payload: %s has %d bytes, the header says %d", pkg, fi.path, e.size, fi.size)
				}
				content = false // a hard link whose data comes with another member
			}
			nd.kind, nd.size = kindReg, fi.size
			wanted := selected[idx] || (g != nil && g.keep)
			if content && wanted && (g == nil || !g.have) {
				off, sum, err := b.spool.add(cr, fi.size, pkg.digestAlgo, fi.digest)
				if err != nil {
					return fmt.Errorf("%s: %s: %w", pkg, fi.path, err)
				}
				nd.off, nd.sum = off, sum
				if g != nil {
					g.have, g.off, g.sum = true, off, sum
				}
			}
			if g != nil && selected[idx] {
				g.nodes = append(g.nodes, nd)
			}
		}
		if selected[idx] {
			kept = append(kept, nd)
		}
	}
	for i := range pkg.files {
		if !seen[i] && !pkg.files[i].ghost() {
			return fmt.Errorf("%s: payload lacks %s", pkg, pkg.files[i].path)
		}
	}
	for i, g := range groupOf {
		if g == nil || !g.keep || g.last != i {
			continue // each group once, in header order
		}
		if !g.have {
			return fmt.Errorf("%s: hard-linked file %s has no content in the payload", pkg, pkg.files[g.last].path)
		}
		id := 0
		if len(g.nodes) > 1 {
			b.tree.hardlinks++
			id = b.tree.hardlinks
		}
		for _, nd := range g.nodes {
			nd.off, nd.sum, nd.hardlink = g.off, g.sum, id
		}
	}
	for _, nd := range kept {
		if err := b.tree.add(nd); err != nil {
			return err
		}
	}
	return nil
}

// checkArch checks that a package of RPM architecture arch runs on the
// image's OCI architecture.
func checkArch(arch, ociArch string) error {
	want, ok := map[string]string{
		"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64le", "s390x": "s390x",
		"i686": "386", "i386": "386", "armv7hl": "arm", "riscv64": "riscv64",
	}[arch]
	switch {
	case arch == "noarch":
		return nil
	case !ok:
		return fmt.Errorf("unknown architecture %q", arch)
	case want != ociArch:
		return fmt.Errorf("architecture %s does not run on %s images", arch, ociArch)
	}
	return nil
}

// addFiles adds Image.Files and the generated /etc/passwd and /etc/group.
func (b *builder) addFiles() error {
	for i, f := range b.job.img.Files {
		nd, err := fileNode(f)
		if err != nil {
			return fmt.Errorf("files[%d]: %w", i, err)
		}
		nd.src = fmt.Sprintf("files[%d]", i)
		if err := b.tree.add(nd); err != nil {
			return err
		}
	}
	if name := b.job.img.UserName; name != "" {
		uid, gid := b.job.uid, b.job.gid
		passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:/:/sbin/nologin\n", name, uid, gid, name)
		group := fmt.Sprintf("root:x:0:\n%s:x:%d:\n", name, gid)
		for _, g := range []struct{ path, body string }{{"etc/passwd", passwd}, {"etc/group", group}} {
			nd := bodyNode(g.path, []byte(g.body), 0o644)
			nd.src = "the /" + g.path + " generated for UserName"
			if err := b.tree.add(nd); err != nil {
				return err
			}
		}
	}
	return nil
}

func bodyNode(rel string, body []byte, perm uint32) *node {
	nd := &node{path: rel, kind: kindReg, perm: perm, body: body, size: int64(len(body)), off: -1}
	nd.sum = sha256Sum(body)
	return nd
}

// fileNode checks an Image.Files entry and makes its node.
func fileNode(f File) (*node, error) {
	rel, err := cleanPath(f.Path)
	if err != nil {
		return nil, err
	}
	if rel == "" {
		return nil, fmt.Errorf("%s: the image root cannot be replaced", f.Path)
	}
	if f.Mode&^modePerm != 0 {
		return nil, fmt.Errorf("%s: mode %o has bits besides permissions (0%o)", f.Path, f.Mode, modePerm)
	}
	if f.UID < 0 || f.GID < 0 || f.UID > maxID || f.GID > maxID {
		return nil, fmt.Errorf("%s: uid %d or gid %d out of range", f.Path, f.UID, f.GID)
	}
	var nd *node
	switch f.Type {
	case Regular:
		nd = bodyNode(rel, f.Body, or(f.Mode, 0o644))
		if f.Target != "" {
			return nil, fmt.Errorf("%s: a regular file has no target", f.Path)
		}
	case Directory:
		if len(f.Body) > 0 || f.Target != "" {
			return nil, fmt.Errorf("%s: a directory has no body or target", f.Path)
		}
		nd = &node{path: rel, kind: kindDir, perm: or(f.Mode, 0o755)}
	case Symlink:
		if err := checkLinkTarget(f.Target); err != nil {
			return nil, fmt.Errorf("%s: %w", f.Path, err)
		}
		if len(f.Body) > 0 {
			return nil, fmt.Errorf("%s: a symlink has no body", f.Path)
		}
		nd = &node{path: rel, kind: kindSymlink, perm: or(f.Mode, 0o777), link: f.Target}
	default:
		return nil, fmt.Errorf("%s: unknown file type %d", f.Path, f.Type)
	}
	nd.uid, nd.gid = f.UID, f.GID
	return nd, nil
}

func or(v, def uint32) uint32 {
	if v == 0 {
		return def
	}
	return v
}

// resolveOwners turns the owner names of package files into ids through
// the image's /etc/passwd and /etc/group, and checks Image.User.
func (b *builder) resolveOwners() error {
	acc := &accounts{}
	var err error
	if acc.users, err = b.readAccounts("etc/passwd", 3); err != nil {
		return err
	}
	if acc.groups, err = b.readAccounts("etc/group", 3); err != nil {
		return err
	}
	for _, nd := range slices.Concat(b.tree.sorted(), b.tree.dups) {
		if nd.user != "" {
			id, ok := acc.uid(nd.user)
			if !ok {
				return fmt.Errorf("/%s (%s): owner %q is not in the image's /etc/passwd", nd.path, nd.src, nd.user)
			}
			nd.uid, nd.user = id, ""
		}
		if nd.group != "" {
			id, ok := acc.gid(nd.group)
			if !ok {
				return fmt.Errorf("/%s (%s): group %q is not in the image's /etc/group", nd.path, nd.src, nd.group)
			}
			nd.gid, nd.group = id, ""
		}
	}
	for _, nd := range b.tree.dups {
		if same, why := b.tree.nodes[nd.path].sameOwner(nd); !same {
			return fmt.Errorf("/%s: %s and %s differ (%s)", nd.path, b.tree.nodes[nd.path].src, nd.src, why)
		}
	}
	if u := b.job.img.User; u != "" && !b.job.numericUser {
		name, group, _ := strings.Cut(u, ":")
		if _, ok := acc.uid(name); !ok {
			if _, err := strconv.Atoi(name); err != nil {
				return fmt.Errorf("user %q: %q is not in the image's /etc/passwd", u, name)
			}
		}
		if group != "" {
			if _, ok := acc.gid(group); !ok {
				if _, err := strconv.Atoi(group); err != nil {
					return fmt.Errorf("user %q: group %q is not in the image's /etc/group", u, group)
				}
			}
		}
	}
	return nil
}

// readAccounts parses the image's rel (etc/passwd or etc/group), if any.
func (b *builder) readAccounts(rel string, minFields int) (map[string]int, error) {
	nd := b.tree.nodes[rel]
	if nd == nil {
		return nil, nil
	}
	if nd.kind != kindReg {
		return nil, fmt.Errorf("/%s (%s): is a %s, not a regular file", rel, nd.src, nd.kind)
	}
	if nd.size > maxAccountsFile {
		return nil, fmt.Errorf("/%s (%s): larger than %d bytes", rel, nd.src, maxAccountsFile)
	}
	data := nd.body
	if nd.off >= 0 && nd.body == nil {
		var buf bytes.Buffer
		if _, err := io.Copy(&buf, b.spool.section(nd.off, nd.size)); err != nil {
			return nil, fmt.Errorf("/%s: %w", rel, err)
		}
		data = buf.Bytes()
	}
	ids, err := parseAccounts("/"+rel, data, minFields)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", nd.src, err)
	}
	return ids, nil
}

// checkEntrypoint checks that an absolute Entrypoint[0] is an executable
// regular file of the image (through symlinks), so that a composed image
// runs. A bare name is looked up in PATH by the runtime and not checked.
func (b *builder) checkEntrypoint() error {
	exe := b.job.img.Entrypoint[0]
	if !strings.HasPrefix(exe, "/") {
		return nil
	}
	nd, err := b.tree.lookup(exe)
	if err != nil {
		return fmt.Errorf("entrypoint %s: %w", exe, err)
	}
	if nd.kind != kindReg || nd.perm&0o111 == 0 {
		return fmt.Errorf("entrypoint %s: /%s is not an executable file (%s, mode %04o)", exe, nd.path, nd.kind, nd.perm)
	}
	return nil
}
