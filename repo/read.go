package repo

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// ReadOptions controls ReadRepodataFSWithOptions. A zero limit takes its
// value from DefaultReadOptions.
type ReadOptions struct {
	MaxRepomdSize      int64 // bytes of repomd.xml (and of repomd.xml.asc)
	MaxPrimarySize     int64 // bytes of the compressed primary file
	MaxPrimaryOpenSize int64 // bytes of primary.xml after decompression
	MaxPackages        int   // packages in primary.xml

	// VerifyRepomd, if set, is called with the bytes of repomd.xml before
	// they are parsed, and those of repodata/repomd.xml.asc (nil if there
	// is none), typically to check that detached signature. An error stops
	// the read. Everything else is then trusted through the checksums.
	VerifyRepomd func(repomd, asc []byte) error
}

// DefaultReadOptions returns the limits ReadRepodataFS uses: 1 MiB of
// repomd.xml, 256 MiB of compressed and 1 GiB of uncompressed primary.xml,
// one million packages. Fedora's full primary.xml is about a fifth of that.
func DefaultReadOptions() ReadOptions {
	return ReadOptions{
		MaxRepomdSize:      1 << 20,
		MaxPrimarySize:     256 << 20,
		MaxPrimaryOpenSize: 1 << 30,
		MaxPackages:        1 << 20,
	}
}

func (o ReadOptions) withDefaults() ReadOptions {
	d := DefaultReadOptions()
	if o.MaxRepomdSize <= 0 {
		o.MaxRepomdSize = d.MaxRepomdSize
	}
	if o.MaxPrimarySize <= 0 {
		o.MaxPrimarySize = d.MaxPrimarySize
	}
	if o.MaxPrimaryOpenSize <= 0 {
		o.MaxPrimaryOpenSize = d.MaxPrimaryOpenSize
	}
	if o.MaxPackages <= 0 {
		o.MaxPackages = d.MaxPackages
	}
	return o
}

// ErrTooLarge is wrapped by errors for metadata larger than its declared
// size or than a ReadOptions limit.
var ErrTooLarge = errors.New("metadata too large")

// ReadRepodata reads dir/repodata/repomd.xml and the primary metadata it
// names; see ReadRepodataFS.
func ReadRepodata(dir string) ([]*Package, error) {
	pkgs, err := ReadRepodataFS(os.DirFS(dir), ".")
	if err != nil {
		return nil, fmt.Errorf("reading repodata of %s: %w", dir, err)
	}
	return pkgs, nil
}

// ReadRepodataFS reads root/repodata/repomd.xml in fsys and the primary
// metadata it names, with DefaultReadOptions.
func ReadRepodataFS(fsys fs.FS, root string) ([]*Package, error) {
	return ReadRepodataFSWithOptions(fsys, root, ReadOptions{})
}

// ReadRepodataFSWithOptions reads root/repodata/repomd.xml in fsys and the
// primary metadata it names (gzip, zstd or plain XML) into Packages. It
// checks the sha256 checksum and size repomd.xml declares for the file and,
// when declared, the open-checksum and open-size of its content; reading
// stops with an error wrapping ErrTooLarge as soon as the data passes a
// declared size or a limit. Hrefs must be plain relative paths inside the
// repository (no "..", no xml:base).
//
// The Packages carry what primary.xml holds: no changelogs, and only the
// files primary.xml lists (see WriteRepodata). FileTime is the <time file=>
// value.
func ReadRepodataFSWithOptions(fsys fs.FS, root string, opts ReadOptions) ([]*Package, error) {
	opts = opts.withDefaults()
	if !fs.ValidPath(root) {
		return nil, fmt.Errorf("reading repodata: invalid root %q", root)
	}
	mdPath := path.Join(root, "repodata", "repomd.xml")
	md, err := readBounded(fsys, mdPath, opts.MaxRepomdSize)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", mdPath, err)
	}
	if opts.VerifyRepomd != nil {
		asc, err := readBounded(fsys, mdPath+".asc", opts.MaxRepomdSize)
		if errors.Is(err, fs.ErrNotExist) {
			asc, err = nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s.asc: %w", mdPath, err)
		}
		if err := opts.VerifyRepomd(md, asc); err != nil {
			return nil, fmt.Errorf("verifying %s: %w", mdPath, err)
		}
	}
	rec, err := parseRepomd(md)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", mdPath, err)
	}
	primPath := path.Join(root, rec.href)
	pkgs, err := readPrimaryFile(fsys, primPath, rec, opts)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", primPath, err)
	}
	return pkgs, nil
}

// repomdData is what the reader needs of a <data> entry; a size of -1 is
// undeclared.
type repomdData struct {
	href, checksum, openChecksum string
	size, openSize               int64
}

type xmlChecksum struct {
	Type  string `xml:"type,attr"`
	Value string `xml:",chardata"`
}

type xmlRepomd struct {
	XMLName xml.Name `xml:"repomd"`
	Data    []struct {
		Type         string       `xml:"type,attr"`
		Checksum     *xmlChecksum `xml:"checksum"`
		OpenChecksum *xmlChecksum `xml:"open-checksum"`
		Location     struct {
			Href string `xml:"href,attr"`
		} `xml:"location"`
		Size     string `xml:"size"`
		OpenSize string `xml:"open-size"`
	} `xml:"data"`
}

// readBounded reads a whole file of at most limit bytes.
func readBounded(fsys fs.FS, name string, limit int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	return data, nil
}

func parseRepomd(data []byte) (repomdData, error) {
	var err error
	var md xmlRepomd
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	if err := d.Decode(&md); err != nil {
		return repomdData{}, fmt.Errorf("parsing: %w", err)
	}
	var rec *repomdData
	for _, e := range md.Data {
		if e.Type != "primary" {
			continue
		}
		if rec != nil {
			return repomdData{}, errors.New("more than one primary entry")
		}
		r := repomdData{href: e.Location.Href}
		if !fs.ValidPath(r.href) || r.href == "." {
			return repomdData{}, fmt.Errorf("primary location %q is not a relative path inside the repository", r.href)
		}
		if r.checksum, err = sha256Field("checksum", e.Checksum); err != nil {
			return repomdData{}, err
		}
		if r.checksum == "" {
			return repomdData{}, errors.New("primary entry has no checksum")
		}
		if r.openChecksum, err = sha256Field("open-checksum", e.OpenChecksum); err != nil {
			return repomdData{}, err
		}
		if r.size, err = sizeField("size", e.Size); err != nil {
			return repomdData{}, err
		}
		if r.openSize, err = sizeField("open-size", e.OpenSize); err != nil {
			return repomdData{}, err
		}
		rec = &r
	}
	if rec == nil {
		return repomdData{}, errors.New("no primary entry")
	}
	return *rec, nil
}

func sha256Field(what string, c *xmlChecksum) (string, error) {
	if c == nil {
		return "", nil
	}
	if c.Type != "sha256" {
		return "", fmt.Errorf("%s type %q is not supported (only sha256)", what, c.Type)
	}
	v := strings.ToLower(strings.TrimSpace(c.Value))
	if !isSHA256Hex(v) {
		return "", fmt.Errorf("%s %q is not a sha256 hex digest", what, c.Value)
	}
	return v, nil
}

func sizeField(what, s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return -1, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad %s %q", what, s)
	}
	return n, nil
}

// capReader reads at most n bytes from r and fails with ErrTooLarge if r
// has more.
type capReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		var one [1]byte
		for range 100 {
			k, err := c.r.Read(one[:])
			if k > 0 {
				return 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, c.max)
			}
			if err != nil {
				return 0, err
			}
		}
		return 0, io.ErrNoProgress
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	k, err := c.r.Read(p)
	c.n -= int64(k)
	return k, err
}

// RepomdPrimary is what repomd.xml says of the primary metadata.
type RepomdPrimary struct {
	// Href is the file's path relative to the repository root (checked:
	// no "..", not absolute).
	Href string
	// SHA256 is the hex digest of the file as stored (compressed).
	SHA256 string
	// Size and OpenSize (decompressed) are -1 when repomd.xml omits them.
	Size, OpenSize int64

	openSHA256 string
}

// ParseRepomdPrimary parses repomd.xml and returns its primary entry, with
// the checks ReadRepodataFS makes (sha256 checksums only, a relative href).
// For callers that download the files themselves; ReadPrimary then reads
// the primary file.
func ParseRepomdPrimary(repomd []byte) (RepomdPrimary, error) {
	rec, err := parseRepomd(repomd)
	if err != nil {
		return RepomdPrimary{}, fmt.Errorf("reading repomd.xml: %w", err)
	}
	return RepomdPrimary{Href: rec.href, SHA256: rec.checksum, Size: rec.size, OpenSize: rec.openSize, openSHA256: rec.openChecksum}, nil
}

// ReadPrimary reads a primary metadata file (gzip, zstd or plain XML) from
// r, checking it against md as ReadRepodataFSWithOptions does and within
// the limits of opts.
func ReadPrimary(r io.Reader, md RepomdPrimary, opts ReadOptions) ([]*Package, error) {
	rec := repomdData{href: md.Href, checksum: md.SHA256, openChecksum: md.openSHA256, size: md.Size, openSize: md.OpenSize}
	pkgs, err := readPrimary(r, rec, opts.withDefaults())
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", md.Href, err)
	}
	return pkgs, nil
}

// primaryLimits are the most compressed and decompressed bytes to read.
func primaryLimits(rec repomdData, lim ReadOptions) (zmax, omax int64, err error) {
	zmax = lim.MaxPrimarySize
	if rec.size > zmax {
		return 0, 0, fmt.Errorf("%w: declared size %d is over the limit of %d bytes", ErrTooLarge, rec.size, zmax)
	}
	if rec.size >= 0 {
		zmax = rec.size
	}
	omax = lim.MaxPrimaryOpenSize
	if rec.openSize > omax {
		return 0, 0, fmt.Errorf("%w: declared open-size %d is over the limit of %d bytes", ErrTooLarge, rec.openSize, omax)
	}
	if rec.openSize >= 0 {
		omax = rec.openSize
	}
	return zmax, omax, nil
}

func readPrimaryFile(fsys fs.FS, name string, rec repomdData, lim ReadOptions) ([]*Package, error) {
	zmax, _, err := primaryLimits(rec, lim)
	if err != nil {
		return nil, err
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > zmax {
		return nil, fmt.Errorf("%w: file has %d bytes, at most %d expected", ErrTooLarge, st.Size(), zmax)
	}
	return readPrimary(f, rec, lim)
}

// zstdMaxWindow bounds the memory a zstd stream may ask for.
const zstdMaxWindow = 64 << 20

func readPrimary(f io.Reader, rec repomdData, lim ReadOptions) ([]*Package, error) {
	name := rec.href
	zmax, omax, err := primaryLimits(rec, lim)
	if err != nil {
		return nil, err
	}
	zsum, osum := sha256.New(), sha256.New()
	zcount, ocount := &countWriter{}, &countWriter{}
	zr := io.TeeReader(&capReader{r: f, n: zmax, max: zmax}, io.MultiWriter(zsum, zcount))
	br := bufio.NewReader(zr)
	var content io.Reader
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("decompressing: %w", err)
		}
		content = gz
	} else if magic, _ := br.Peek(4); bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return nil, fmt.Errorf("decompressing: %w", err)
		}
		defer zr.Close()
		content = zr
	} else if strings.HasSuffix(name, ".xml") {
		content = br
	} else {
		return nil, errors.New("unsupported compression (only gzip, zstd and plain xml are read)")
	}
	or := io.TeeReader(&capReader{r: content, n: omax, max: omax}, io.MultiWriter(osum, ocount))
	pkgs, err := parsePrimary(or, lim.MaxPackages)
	if err != nil {
		return nil, err
	}
	// Hash whatever follows the document (and, for gzip, check the trailer).
	if _, err := io.Copy(io.Discard, or); err != nil {
		return nil, fmt.Errorf("decompressing: %w", err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, err
	}
	if rec.size >= 0 && zcount.n != rec.size {
		return nil, fmt.Errorf("size is %d, repomd.xml says %d", zcount.n, rec.size)
	}
	if got := hex.EncodeToString(zsum.Sum(nil)); got != rec.checksum {
		return nil, fmt.Errorf("checksum mismatch: sha256 is %s, repomd.xml says %s", got, rec.checksum)
	}
	if rec.openSize >= 0 && ocount.n != rec.openSize {
		return nil, fmt.Errorf("open-size is %d, repomd.xml says %d", ocount.n, rec.openSize)
	}
	if rec.openChecksum != "" {
		if got := hex.EncodeToString(osum.Sum(nil)); got != rec.openChecksum {
			return nil, fmt.Errorf("open-checksum mismatch: sha256 is %s, repomd.xml says %s", got, rec.openChecksum)
		}
	}
	return pkgs, nil
}

const xmlNamespaceURL = "http://www.w3.org/XML/1998/namespace"

// primaryParser reads primary.xml with a streaming decoder.
type primaryParser struct {
	d *xml.Decoder
}

// parsePrimary parses a primary.xml document into Packages, allowing at
// most maxPackages of them.
func parsePrimary(r io.Reader, maxPackages int) ([]*Package, error) {
	p := &primaryParser{d: xml.NewDecoder(r)}
	p.d.Strict = true
	root, err := p.rootStart()
	if err != nil {
		return nil, err
	}
	if root.Name.Local != "metadata" {
		return nil, fmt.Errorf("root element is <%s>, not <metadata>", root.Name.Local)
	}
	declared := -1
	if s, ok := attr(root, "packages"); ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("bad packages count %q", s)
		}
		declared = n
	}
	var pkgs []*Package
	err = p.children(func(se xml.StartElement) error {
		if se.Name.Local != "package" {
			return p.d.Skip()
		}
		if len(pkgs) >= maxPackages {
			return fmt.Errorf("%w: more than %d packages", ErrTooLarge, maxPackages)
		}
		pkg, err := p.pkg(se)
		if err != nil {
			return fmt.Errorf("package %d: %w", len(pkgs)+1, err)
		}
		pkgs = append(pkgs, pkg)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := p.rootEnd(); err != nil {
		return nil, err
	}
	if declared >= 0 && declared != len(pkgs) {
		return nil, fmt.Errorf("%d packages, the packages attribute says %d", len(pkgs), declared)
	}
	return pkgs, nil
}

func (p *primaryParser) token() (xml.Token, error) {
	t, err := p.d.Token()
	if err == io.EOF {
		return nil, io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, fmt.Errorf("parsing: %w", err)
	}
	return t, nil
}

// rootStart returns the root element, skipping the prolog.
func (p *primaryParser) rootStart() (xml.StartElement, error) {
	for {
		t, err := p.token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := t.(type) {
		case xml.StartElement:
			return t, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return xml.StartElement{}, errors.New("text before the root element")
			}
		}
	}
}

// rootEnd checks that nothing but white space, comments and processing
// instructions follows the root element.
func (p *primaryParser) rootEnd() error {
	for {
		t, err := p.d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("parsing: %w", err)
		}
		switch t := t.(type) {
		case xml.StartElement, xml.EndElement:
			return errors.New("content after the root element")
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return errors.New("text after the root element")
			}
		}
	}
}

// children calls f for each child element of the element just started,
// until its end. f must consume the child through its end element. Text
// between children is ignored.
func (p *primaryParser) children(f func(xml.StartElement) error) error {
	for {
		t, err := p.token()
		if err != nil {
			return err
		}
		switch t := t.(type) {
		case xml.StartElement:
			if err := f(t); err != nil {
				return err
			}
		case xml.EndElement:
			return nil
		}
	}
}

// text returns the text content of the element just started, through its
// end. Child elements are an error.
func (p *primaryParser) text(se xml.StartElement) (string, error) {
	var b []byte
	for {
		t, err := p.token()
		if err != nil {
			return "", err
		}
		switch t := t.(type) {
		case xml.CharData:
			b = append(b, t...)
		case xml.StartElement:
			return "", fmt.Errorf("unexpected <%s> in <%s>", t.Name.Local, se.Name.Local)
		case xml.EndElement:
			return string(b), nil
		}
	}
}

func attr(se xml.StartElement, name string) (string, bool) {
	for _, a := range se.Attr {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value, true
		}
	}
	return "", false
}

func intAttr(se xml.StartElement, name string) (int64, error) {
	s, ok := attr(se, name)
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("<%s %s=%q>: not an integer", se.Name.Local, name, s)
	}
	return n, nil
}

func (p *primaryParser) pkg(se xml.StartElement) (*Package, error) {
	if t, ok := attr(se, "type"); ok && t != "rpm" {
		return nil, fmt.Errorf("package type %q is not rpm", t)
	}
	pkg := &Package{}
	var haveChecksum, haveLocation bool
	err := p.children(func(se xml.StartElement) error {
		var err error
		switch se.Name.Local {
		case "name":
			pkg.Name, err = p.text(se)
		case "arch":
			pkg.Arch, err = p.text(se)
		case "summary":
			pkg.Summary, err = p.text(se)
		case "description":
			pkg.Description, err = p.text(se)
		case "packager":
			pkg.Packager, err = p.text(se)
		case "url":
			pkg.URL, err = p.text(se)
		case "version":
			e, err := intAttr(se, "epoch")
			if err != nil {
				return err
			}
			if e < 0 || e > 1<<31-1 {
				return fmt.Errorf("epoch %d out of range", e)
			}
			pkg.Epoch = int(e)
			pkg.Version, _ = attr(se, "ver")
			pkg.Release, _ = attr(se, "rel")
			return p.d.Skip()
		case "checksum":
			if t, _ := attr(se, "type"); t != "sha256" {
				return fmt.Errorf("checksum type %q is not supported (only sha256)", t)
			}
			s, err := p.text(se)
			if err != nil {
				return err
			}
			pkg.Checksum = strings.ToLower(strings.TrimSpace(s))
			haveChecksum = true
		case "time":
			if pkg.FileTime, err = intAttr(se, "file"); err != nil {
				return err
			}
			if pkg.BuildTime, err = intAttr(se, "build"); err != nil {
				return err
			}
			return p.d.Skip()
		case "size":
			if pkg.Size, err = intAttr(se, "package"); err != nil {
				return err
			}
			if pkg.InstalledSize, err = intAttr(se, "installed"); err != nil {
				return err
			}
			if pkg.ArchiveSize, err = intAttr(se, "archive"); err != nil {
				return err
			}
			return p.d.Skip()
		case "location":
			for _, a := range se.Attr {
				if a.Name.Local == "base" && (a.Name.Space == "xml" || a.Name.Space == xmlNamespaceURL) {
					return fmt.Errorf("location with xml:base %q is not supported", a.Value)
				}
			}
			pkg.Location, haveLocation = attr(se, "href")
			return p.d.Skip()
		case "format":
			return p.format(se, pkg)
		default:
			return p.d.Skip()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	switch {
	case pkg.Name == "":
		return nil, errors.New("no name")
	case !haveChecksum || !isSHA256Hex(pkg.Checksum):
		return nil, fmt.Errorf("%s: missing or bad sha256 checksum %q", pkg.Name, pkg.Checksum)
	case !haveLocation || !fs.ValidPath(pkg.Location) || pkg.Location == ".":
		return nil, fmt.Errorf("%s: location %q is not a relative path inside the repository", pkg.Name, pkg.Location)
	case pkg.Size < 0 || pkg.InstalledSize < 0 || pkg.ArchiveSize < 0:
		return nil, fmt.Errorf("%s: negative size", pkg.Name)
	}
	return pkg, nil
}

func (p *primaryParser) format(se xml.StartElement, pkg *Package) error {
	return p.children(func(se xml.StartElement) error {
		var err error
		switch se.Name.Local {
		case "license":
			pkg.License, err = p.text(se)
		case "vendor":
			pkg.Vendor, err = p.text(se)
		case "group":
			pkg.Group, err = p.text(se)
		case "buildhost":
			pkg.BuildHost, err = p.text(se)
		case "sourcerpm":
			pkg.SourceRPM, err = p.text(se)
		case "header-range":
			if pkg.HeaderStart, err = intAttr(se, "start"); err != nil {
				return err
			}
			if pkg.HeaderEnd, err = intAttr(se, "end"); err != nil {
				return err
			}
			return p.d.Skip()
		case "provides":
			pkg.Provides, err = p.deps(pkg.Provides)
		case "requires":
			pkg.Requires, err = p.deps(pkg.Requires)
		case "conflicts":
			pkg.Conflicts, err = p.deps(pkg.Conflicts)
		case "obsoletes":
			pkg.Obsoletes, err = p.deps(pkg.Obsoletes)
		case "suggests":
			pkg.Suggests, err = p.deps(pkg.Suggests)
		case "enhances":
			pkg.Enhances, err = p.deps(pkg.Enhances)
		case "recommends":
			pkg.Recommends, err = p.deps(pkg.Recommends)
		case "supplements":
			pkg.Supplements, err = p.deps(pkg.Supplements)
		case "file":
			t, _ := attr(se, "type")
			switch t {
			case "", "file":
				t = FileRegular
			case FileDir, FileGhost:
			default:
				return fmt.Errorf("unknown file type %q", t)
			}
			name, err := p.text(se)
			if err != nil {
				return err
			}
			pkg.Files = append(pkg.Files, File{Path: name, Type: t})
		default:
			return p.d.Skip()
		}
		return err
	})
}

func (p *primaryParser) deps(list []Dependency) ([]Dependency, error) {
	err := p.children(func(se xml.StartElement) error {
		if se.Name.Local != "entry" {
			return p.d.Skip()
		}
		var d Dependency
		d.Name, _ = attr(se, "name")
		if d.Name == "" {
			return errors.New("dependency without a name")
		}
		d.Flags, _ = attr(se, "flags")
		switch d.Flags {
		case "", "EQ", "LT", "LE", "GT", "GE":
		default:
			return fmt.Errorf("dependency %s: unknown flags %q", d.Name, d.Flags)
		}
		if d.Flags != "" {
			d.Epoch, _ = attr(se, "epoch")
			d.Version, _ = attr(se, "ver")
			d.Release, _ = attr(se, "rel")
		}
		pre, _ := attr(se, "pre")
		d.Pre = pre == "1"
		list = append(list, d)
		return p.d.Skip()
	})
	return list, err
}
