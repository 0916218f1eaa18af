// Package iso writes and reads ISO 9660 (ECMA-119) images with Rock Ridge
// and Joliet extensions, in pure Go.
//
// Ferry ships air-gapped Kubernetes bundles as ISO images. We write our own
// because the available libraries do not fit: some truncate or lower-case
// names (blob digests and RPM names must survive whole) or stamp the wall
// clock into the image, others stage a copy of the content and are not
// reproducible. This writer is deterministic (the same entries and options
// give the same bytes, whatever the host's mtimes, owners, modes or clock),
// single pass over the content, and strictly sequential, so the output can
// be a pipe or a hash.
//
// The image is laid out as follows (one block is 2048 bytes):
//
//	block 0       system area, 16 zero blocks
//	block 16      primary volume descriptor (ISO 9660 names, Rock Ridge)
//	block 17      supplementary volume descriptor (Joliet, UCS-2)
//	block 18      volume descriptor set terminator
//	block 19...   path tables: primary L and M, Joliet L and M
//	              primary directories, in path table order; their records
//	              carry Rock Ridge PX, TF and NM entries
//	              Rock Ridge continuation areas (long names, the ER entry)
//	              Joliet directories, in path table order
//	              file data, in path order, each file starting on a block;
//	              both trees point to the same data
//
// Everything up to the file data is planned from names and sizes before
// anything is written; then the content of each file is copied once.
// Files larger than an extent allows (4 GiB - 2 KiB) are recorded as ISO
// 9660 level 3 multi-extent files.
//
// Names: Rock Ridge carries the full names (up to 255 bytes); the primary
// tree has upper-case d-character names of up to 30 characters ("NAME.EXT;1",
// made unique per directory with a "_n" suffix); the Joliet tree has names of
// up to 64 UCS-2 characters (made unique with a "~n" suffix).
//
// The reader (Open) parses an image, from this writer or from another one
// such as xorriso, preferring Rock Ridge, then Joliet, then ISO 9660 names.
// It reads the tree once and then serves file contents straight from the
// underlying io.ReaderAt. It is meant for images from outside: sizes, depths,
// entry counts and continuation chains are bounded, and loops are detected.
//
// Other readers choose differently: xorriso wants an ER entry before it
// uses Rock Ridge, bsdtar only SP, 7z takes the last Joliet descriptor,
// isoinfo -J reads Joliet alone. An image edited so that its trees disagree
// shows Open the signed files and such a reader others. OpenStrict is for
// images that other tools will also read (bundles): it reads the primary
// tree with its Rock Ridge names, the Joliet tree, the L and M path tables
// of both and every volume descriptor, and accepts the image only if they
// all name the same files with the same extents, file extents overlap
// neither each other nor metadata, and every block nothing claims is zero.
// Its entry limit can be lowered to what the caller expects. OpenRoot reads
// only the named entries of the root directory (a bundle's manifest and
// signature), in memory that does not grow with the image's entries, so
// that the full read can be capped by a manifest checked first.
package iso
