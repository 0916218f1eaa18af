package repo

import (
	"bytes"
	"compress/gzip"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// xnode is a generic XML element used to compare documents element by
// element: names are namespace URL + local name, attributes are sorted and
// white-space-only text between child elements is dropped.
type xnode struct {
	name     string
	attrs    []string // "ns local=value", sorted
	text     string
	children []*xnode
}

func parseXMLTree(data []byte) (*xnode, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	var stack []*xnode
	var root *xnode
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &xnode{name: tok.Name.Space + " " + tok.Name.Local}
			for _, a := range tok.Attr {
				n.attrs = append(n.attrs, a.Name.Space+" "+a.Name.Local+"="+a.Value)
			}
			sort.Strings(n.attrs)
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			n := stack[len(stack)-1]
			if len(n.children) > 0 && strings.TrimSpace(n.text) == "" {
				n.text = ""
			}
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(tok)
			}
		}
	}
	if root == nil {
		return nil, fmt.Errorf("no root element")
	}
	return root, nil
}

func (n *xnode) String() string {
	var b strings.Builder
	n.dump(&b, "")
	return b.String()
}

func (n *xnode) dump(b *strings.Builder, indent string) {
	fmt.Fprintf(b, "%s<%s %v> %q\n", indent, n.name, n.attrs, n.text)
	for _, c := range n.children {
		c.dump(b, indent+"  ")
	}
}

// diffXMLTree returns a description of the first differences between a and
// b (at most max lines), or "" if they are equal.
func diffXMLTree(a, b *xnode, path string, out *[]string, max int) {
	if len(*out) >= max {
		return
	}
	here := path + "/" + a.name[strings.LastIndexByte(a.name, ' ')+1:]
	if a.name != b.name {
		*out = append(*out, fmt.Sprintf("%s: element %q vs %q", path, a.name, b.name))
		return
	}
	if strings.Join(a.attrs, "\x00") != strings.Join(b.attrs, "\x00") {
		*out = append(*out, fmt.Sprintf("%s: attributes %q vs %q", here, a.attrs, b.attrs))
	}
	if a.text != b.text {
		*out = append(*out, fmt.Sprintf("%s: text %q vs %q", here, a.text, b.text))
	}
	if len(a.children) != len(b.children) {
		*out = append(*out, fmt.Sprintf("%s: %d children vs %d:\n%s---\n%s", here, len(a.children), len(b.children), a, b))
		return
	}
	for i := range a.children {
		diffXMLTree(a.children[i], b.children[i], here, out, max)
	}
}

// readGzipFile returns the decompressed content of a .gz file.
func readGzipFile(t testing.TB, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return data
}

// repodataFile finds dir/repodata/*-<kind>.xml.gz.
func repodataFile(t testing.TB, dir, kind string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "repodata", "*-"+kind+".xml.gz"))
	if err != nil || len(m) != 1 {
		t.Fatalf("want one %s file in %s/repodata, found %v (%v)", kind, dir, m, err)
	}
	return m[0]
}
