// Package repo reads RPM packages and writes and reads yum repository
// metadata ("repodata") the way createrepo_c does.
//
// ReadPackage and its variants read what the metadata needs from an RPM
// header (with github.com/sassoftware/go-rpmutils, after checking the header
// structure as rpm does, so that hostile files give errors, not panics or
// huge allocations) and hash the file. Dependencies are filtered as
// createrepo_c filters them (rpmlib() requires, requires on the package's own
// primary files, requires satisfied by its own provides, repeated requires,
// all libc.so.6 requires but the highest, missingok requires moved to
// recommends), so a Package holds exactly what goes into primary.xml.
//
// WriteRepodata writes repodata/{primary,filelists,other}.xml.gz and
// repomd.xml. Its output depends only on its input: packages are sorted, the
// gzip streams carry no name or mtime, and every timestamp comes from
// RepodataOptions.Revision (callers pass SOURCE_DATE_EPOCH). Identical inputs
// give identical bytes with the same build of this package (another Go
// release may compress differently). With createrepo_c 0.17.3 given the same
// packages, mtimes and revision, the uncompressed XML is byte-identical.
// No sqlite databases are written; dnf and yum do not need them.
//
// ReadRepodataFS reads repomd.xml and the primary metadata back, from a
// directory or any fs.FS (such as a mounted ISO image), checking the sha256
// checksums and sizes repomd.xml declares and bounding every size it reads;
// ReadOptions.VerifyRepomd lets the caller check repomd.xml.asc on the very
// bytes that are parsed.
package repo
