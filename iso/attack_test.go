package iso

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The attacks of the "one tree for verify, another for other readers"
// report: each starts from a genuine image of our writer, edits bytes the
// way an attacker with the signed image would, shows that a real reader
// (xorriso, bsdtar, 7z, isoinfo) then extracts the attacker's /installer
// while Open still shows the genuine one, and that OpenStrict refuses the
// image. The tools are installed by `make deps`; a missing tool fails the
// test rather than skipping it, as the proof would silently go away.
//
// The Linux kernel's reader is not among them: `mount -o loop,ro` was tried
// once on the machine these tests were written on (a container) and failed
// with "unknown filesystem type 'iso9660'" (no isofs module to load), so no
// test claims anything about it.

var (
	genuineInstaller = bytes.Repeat([]byte("genuine installer\n"), 200)
	evilInstaller    = []byte("#!/bin/sh\necho attacker\n")
)

// attackImage is a genuine image with an /installer and an attacker's
// block appended after it (which nothing names yet); it returns the image
// and the block number of the attacker's bytes.
func attackImage(t *testing.T) ([]byte, uint32) {
	t.Helper()
	img := genuineImage(t)
	evil := make([]byte, blockSize)
	copy(evil, evilInstaller)
	img = append(img, evil...)
	growVolume(img)
	return img, uint32(len(img)/blockSize - 1)
}

// growVolume sets the volume space size of every descriptor to the image's
// size, as an attacker who appends blocks does (bsdtar reads no extent
// beyond it).
func growVolume(img []byte) {
	for b := firstDescriptor; img[b*blockSize] != descTerminator; b++ {
		putBoth32(img[b*blockSize+80:], uint32(len(img)/blockSize))
	}
}

// genuineImage is the image the attacks start from.
func genuineImage(t *testing.T) []byte {
	return imageOf(t, []testFile{
		{path: "installer", content: genuineInstaller},
		{path: "manifest.json", content: []byte(`{"files":[]}`)},
		{path: "sub/data", content: content(60, 5000)},
	})
}

// setExtent points the directory record at off to size bytes at block lba.
func setExtent(img []byte, off int, lba uint32, size uint32) {
	putBoth32(img[off+2:], lba)
	putBoth32(img[off+10:], size)
}

// descriptorAt returns the block of the first volume descriptor of type
// typ (and, for 2, a Joliet one).
func descriptorAt(t *testing.T, img []byte, typ byte) int {
	t.Helper()
	for b := firstDescriptor; (b+1)*blockSize <= len(img); b++ {
		d := img[b*blockSize:]
		if d[0] == typ && (typ != descSupplementary || isJolietEscape(d[88:120])) {
			return b
		}
		if d[0] == descTerminator {
			break
		}
	}
	t.Fatalf("no volume descriptor of type %d", typ)
	return 0
}

// rootRecordOffset returns the offset of the record named name (decoded
// with decode) in the root directory of the volume descriptor at block desc.
func rootRecordOffset(t *testing.T, img []byte, desc int, name string, decode func([]byte) string) int {
	t.Helper()
	root, err := parseRecord(img[desc*blockSize+156 : desc*blockSize+156+rootRecordLen])
	if err != nil {
		t.Fatal(err)
	}
	start := int(root.lba) * blockSize
	for pos := start; pos < start+int(root.size); {
		n := int(img[pos])
		if n == 0 {
			pos = (pos/blockSize + 1) * blockSize
			continue
		}
		rec, err := parseRecord(img[pos : pos+n])
		if err != nil {
			t.Fatal(err)
		}
		if !isSelfOrParent(rec.id) && decode(rec.id) == name {
			return pos
		}
		pos += n
	}
	t.Fatalf("no record %q in the root of the descriptor at block %d", name, desc)
	return 0
}

func jolietID(id []byte) string { return jolietName(id, false) }

// extract runs a real reader on img and returns the bytes it gives for
// /installer.
func extract(t *testing.T, img []byte, tool string) []byte {
	t.Helper()
	p := saveImage(t, img)
	out := filepath.Join(t.TempDir(), "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	var args []string
	var stdout bool
	switch tool {
	case "xorriso":
		args = []string{"xorriso", "-osirrox", "on", "-indev", p, "-extract", "/installer", filepath.Join(out, "installer")}
	case "bsdtar":
		args = []string{"bsdtar", "-x", "-f", p, "-C", out, "installer"}
	case "7z":
		args = []string{"7z", "x", "-y", "-o" + out, p, "installer"}
	case "isoinfo -J":
		args, stdout = []string{"isoinfo", "-i", p, "-J", "-x", "/installer"}, true
	case "isoinfo -R":
		args, stdout = []string{"isoinfo", "-i", p, "-R", "-x", "/installer"}, true
	default:
		t.Fatalf("unknown tool %q", tool)
	}
	bin, err := exec.LookPath(args[0])
	if err != nil {
		t.Fatalf("%s is required for this test (make deps): %v", args[0], err)
	}
	cmd := exec.Command(bin, args[1:]...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s%s", strings.Join(args, " "), err, so.String(), se.String())
	}
	if stdout {
		return so.Bytes()
	}
	got, err := os.ReadFile(filepath.Join(out, "installer"))
	if err != nil {
		t.Fatalf("%s extracted no installer: %v\n%s%s", tool, err, so.String(), se.String())
	}
	return got
}

// ferrySees returns what Open shows as /installer.
func ferrySees(t *testing.T, img []byte) []byte {
	t.Helper()
	r, err := openBytes(t, img).Open("installer")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(r); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// attackWorks requires tool to extract the attacker's installer while Open
// shows the genuine one.
func attackWorks(t *testing.T, img []byte, tool string) {
	t.Helper()
	if got := ferrySees(t, img); !bytes.Equal(got, genuineInstaller) {
		t.Fatalf("Open shows an installer of %d bytes, not the genuine one", len(got))
	}
	if got := extract(t, img, tool); !bytes.Equal(got, evilInstaller) {
		t.Fatalf("%s extracted %d bytes (%.40q), not the attacker's installer: the attack did not work", tool, len(got), got)
	}
}

// TestAttackGenuineImage: every tool extracts the genuine installer from
// the unaltered image (so a difference below is the attack's doing).
func TestAttackGenuineImage(t *testing.T) {
	img := genuineImage(t)
	for _, tool := range []string{"xorriso", "bsdtar", "7z", "isoinfo -J", "isoinfo -R"} {
		if got := extract(t, img, tool); !bytes.Equal(got, genuineInstaller) {
			t.Errorf("%s extracted %d bytes from the genuine image", tool, len(got))
		}
	}
	if _, err := openStrict(img); err != nil {
		t.Fatal(err)
	}
}

// TestAttackJolietRecord: the Joliet record of /installer points to the
// attacker's bytes; 7z and isoinfo -J read Joliet.
func TestAttackJolietRecord(t *testing.T) {
	img, evil := attackImage(t)
	off := rootRecordOffset(t, img, descriptorAt(t, img, descSupplementary), "installer", jolietID)
	setExtent(img, off, evil, uint32(len(evilInstaller)))
	for _, tool := range []string{"7z", "isoinfo -J"} {
		attackWorks(t, img, tool)
	}
	strictErr(t, img, treeJoliet, "/installer: extents")
}

// TestAttackNoER: the ER entry is removed (Open still takes Rock Ridge from
// the PX entries, xorriso does not) and the Joliet record of /installer
// points to the attacker's bytes; xorriso falls back to Joliet.
func TestAttackNoER(t *testing.T) {
	img, evil := attackImage(t)
	i := bytes.Index(img, []byte("ER\xed\x01"))
	if i < 0 {
		t.Fatal("no ER entry")
	}
	copy(img[i:], "XX") // an unknown entry: skipped by every reader
	off := rootRecordOffset(t, img, descriptorAt(t, img, descSupplementary), "installer", jolietID)
	setExtent(img, off, evil, uint32(len(evilInstaller)))
	attackWorks(t, img, "xorriso")
	strictErr(t, img, treeRockRidge, "SP without an ER")
}

// TestAttackHiddenRockRidge: the ER entry and the root's PX entry are
// renamed, so Open, which wants ER or PX beside SP in the root, does not see
// Rock Ridge and reads Joliet; bsdtar needs only SP and reads the primary
// tree with Rock Ridge, whose /installer record now points to the
// attacker's bytes.
func TestAttackHiddenRockRidge(t *testing.T) {
	img, evil := attackImage(t)
	pvd := descriptorAt(t, img, descPrimary)
	root, err := parseRecord(img[pvd*blockSize+156 : pvd*blockSize+156+rootRecordLen])
	if err != nil {
		t.Fatal(err)
	}
	dot := int(root.lba) * blockSize
	rec, err := parseRecord(img[dot : dot+int(img[dot])])
	if err != nil {
		t.Fatal(err)
	}
	su := dot + recordBaseLen(len(rec.id))
	if string(img[su:su+2]) != "SP" || string(img[su+7:su+9]) != "PX" {
		t.Fatalf("root system use starts %q", img[su:su+9])
	}
	copy(img[su+7:], "XX")
	i := bytes.Index(img, []byte("ER\xed\x01"))
	if i < 0 {
		t.Fatal("no ER entry")
	}
	copy(img[i:], "XX")
	setExtent(img, findRecord(t, img, "installer"), evil, uint32(len(evilInstaller)))
	attackWorks(t, img, "bsdtar")
	strictErr(t, img, treeRockRidge, "SP without an ER")
}

// TestAttackPrimaryRecord: only the primary record changes (Rock Ridge
// readers and Open use it as well, so here the signed content check
// would catch it too); the Joliet tree no longer agrees.
func TestAttackPrimaryRecord(t *testing.T) {
	img, evil := attackImage(t)
	setExtent(img, findRecord(t, img, "installer"), evil, uint32(len(evilInstaller)))
	// Every reader sees the attacker's bytes here, Open too: the trees
	// disagree with each other, which OpenStrict refuses.
	strictErr(t, img, treeJoliet, "/installer: extents")
}

// appendRootCopy appends a copy of the root directory of the descriptor
// at block desc, in which the record name (decoded by decode) points to
// the attacker's bytes, and returns a copy of that descriptor naming it.
func appendRootCopy(t *testing.T, img []byte, desc int, name string, decode func([]byte) string, evil uint32) ([]byte, []byte) {
	t.Helper()
	root, err := parseRecord(img[desc*blockSize+156 : desc*blockSize+156+rootRecordLen])
	if err != nil {
		t.Fatal(err)
	}
	if root.size != blockSize {
		t.Fatalf("root directory of %d bytes", root.size)
	}
	off := rootRecordOffset(t, img, desc, name, decode) - int(root.lba)*blockSize
	copyLBA := uint32(len(img) / blockSize)
	img = append(img, img[int(root.lba)*blockSize:int(root.lba+1)*blockSize]...)
	setExtent(img, int(copyLBA)*blockSize, copyLBA, blockSize) // its "."
	setExtent(img, int(copyLBA)*blockSize+off, evil, uint32(len(evilInstaller)))
	d := bytes.Clone(img[desc*blockSize : (desc+1)*blockSize])
	setExtent(d, 156, copyLBA, blockSize)
	growVolume(img)
	putBoth32(d[80:], uint32(len(img)/blockSize))
	return img, d
}

// TestAttackSecondPVD: a second primary volume descriptor (in place of the
// Joliet one) whose root, a copy of the genuine root, names the attacker's
// /installer. None of the installed tools reads a second PVD (each takes
// the first), but a reader that took the last would be attacked.
func TestAttackSecondPVD(t *testing.T) {
	img, evil := attackImage(t)
	pvd := descriptorAt(t, img, descPrimary)
	svd := descriptorAt(t, img, descSupplementary)
	img, second := appendRootCopy(t, img, pvd, "INSTALLER", func(id []byte) string { return primaryName(id, false) }, evil)
	copy(img[svd*blockSize:], second)
	for _, tool := range []string{"xorriso", "bsdtar", "7z", "isoinfo -R"} {
		if got := extract(t, img, tool); !bytes.Equal(got, genuineInstaller) {
			t.Logf("%s reads the second PVD (%d bytes)", tool, len(got))
		}
	}
	strictErr(t, img, treeVD, "a second primary volume descriptor")
}

// TestAttackSecondJoliet: a second Joliet descriptor (where the terminator
// was; the terminator moves over the first path table, which these readers
// ignore) whose root names the attacker's /installer. 7z takes the last
// Joliet descriptor, Open and the others the first.
func TestAttackSecondJoliet(t *testing.T) {
	img, evil := attackImage(t)
	svd := descriptorAt(t, img, descSupplementary)
	img, second := appendRootCopy(t, img, svd, "installer", jolietID, evil)
	term := bytes.Clone(img[(svd+1)*blockSize : (svd+2)*blockSize])
	if term[0] != descTerminator {
		t.Fatal("no terminator after the Joliet descriptor")
	}
	copy(img[(svd+1)*blockSize:], second)
	copy(img[(svd+2)*blockSize:], term)
	attackWorks(t, img, "7z")
	strictErr(t, img, treeVD, "a second Joliet volume descriptor")
}

// TestAttackPathTable: the L path table points /sub elsewhere, the M one
// names a directory that is not there. None of the installed tools reads
// path tables (isoinfo -x, 7z, bsdtar and xorriso extracted the genuine
// /sub/data from such an image when this was written), so no tool proves
// the attack here; readers that do use them (DOS and early Windows
// drivers, some firmware) would follow the tampered table.
func TestAttackPathTable(t *testing.T) {
	img, _ := attackImage(t)
	pvd := descriptorAt(t, img, descPrimary)
	l := int(le32(img[pvd*blockSize+140:])) * blockSize
	// Entry 1 is the root (10 bytes); entry 2 is SUB.
	if img[l+8+2] != 3 || string(img[l+10+8:l+10+11]) != "SUB" {
		t.Fatalf("unexpected path table %q", img[l:l+24])
	}
	putLE32(img[l+10+2:], le32(img[l+2:])) // SUB -> the root's extent
	strictErr(t, img, treePathTable, "names block")

	img, _ = attackImage(t)
	m := int(be32(img[pvd*blockSize+148:])) * blockSize
	img[m+10+8] = 'X' // "XUB"
	strictErr(t, img, treePathTable, "is no directory of the tree")
}

// TestAttackOverlap: manifest.json claims many times the image's size
// through extents that all name the same blocks, and the unused space
// hides another file system's signature.
func TestAttackOverlap(t *testing.T) {
	img, evil := attackImage(t)
	off := findRecord(t, img, "sub/data")
	inst := findRecord(t, img, "installer")
	lba := le32(img[inst+2:])
	setExtent(img, off, lba, 5000)
	joff := rootRecordOffset(t, img, descriptorAt(t, img, descSupplementary), "sub", jolietID)
	jsub, err := parseRecord(img[joff : joff+int(img[joff])])
	if err != nil {
		t.Fatal(err)
	}
	// The Joliet /sub/data record follows ".", ".." in /sub.
	jdata := int(jsub.lba) * blockSize
	jdata += int(img[jdata])
	jdata += int(img[jdata])
	setExtent(img, jdata, lba, 5000)
	strictErr(t, img, treeLayout, "overlaps")

	// The attacker's block that nothing names: another file system's
	// superblock could hide there.
	img, _ = attackImage(t)
	_ = evil
	strictErr(t, img, treeLayout, "not zero")
}

func putLE32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}
func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
