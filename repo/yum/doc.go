// Package yum reads upstream yum repositories over HTTPS and resolves
// package names to a pinned dependency closure: what `builder lock`
// records so that `builder build` downloads exactly those files.
//
//	Load(repository) ─▶ repomd.xml (+ .asc checked with the repository's key)
//	                 ─▶ primary metadata (sha256 from repomd.xml, cached) ─▶ Index
//	Resolve(indexes, names, exclude, arches) ─▶ []Pinned | *UnmetError
//
// Resolution picks, for each name, the highest version (rpmver) that
// satisfies its constraint among the allowed architectures, then closes
// over Requires: a requirement is met by a package already selected, by a
// package the target OS has (an exclude glob matches its name, or the name
// of a package that can provide it), or else by a new provider, preferring
// the earlier repository, then the higher version, then the name. Plain and
// versioned requirements, file requirements (against the files primary.xml
// lists: /etc/…, …bin/…, and explicit file provides) and rich (boolean)
// requirements (and, or, if, unless, with, without, else) are understood.
// Weak dependencies (Recommends, Suggests, …) are not followed, and
// Conflicts and Obsoletes are not checked, as dnf with
// install_weak_deps=False would not need them on a target that lacks the
// excluded packages. There is no backtracking: the first version chosen for
// a name.arch stays, and a requirement it cannot meet is reported.
//
// Only sha256 package checksums are accepted (repo.ReadPrimary refuses sha1
// and md5 repositories): the lock pins what the signed metadata says.
package yum
