// Package builder turns a bundle spec into one signed, reproducible ISO.
//
// The build is a kubeadm-style workflow of named phases. Each phase reads
// what the earlier ones left in the work tree and writes its own part, so any
// phase can be run alone against a kept work directory (builder phase NAME):
//
//	resolve   load and check the spec; every source readable and pinned
//	fetch     copy the images into one OCI layout (images/), digests kept;
//	          archive sources are unpacked in the work directory (tmp/)
//	compose   place the RPMs (packages/<repo>/Packages/), the installer binary
//	          and the public key
//	repodata  write each repository's repodata and sign repomd.xml
//	manifest  hash every file; check the images against the rules installers
//	          enforce (images.CheckLayout); write SHA256SUMS (+.asc) and
//	          manifest.json
//	sign      sign manifest.json (manifest.json.asc)
//	iso       write the ISO next to the output, then rename it into place
//	check     verify the written ISO as an installer would
//
// Data flows one way: spec → content tree → manifest → signature → ISO.
// Nothing is written at the output path until the ISO is complete; a failed
// build leaves no partial ISO behind.
package builder
