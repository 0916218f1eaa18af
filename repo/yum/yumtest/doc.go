// Package yumtest makes upstream yum repositories for tests: RPMs built by
// repo/rpmtest and signed by a throwaway gpg key, repodata written by the
// real createrepo_c, repomd.xml signed by gpg, all served over TLS by an
// httptest server that counts (and can tamper with) what it serves. The
// programs are required: a missing one fails the test, naming its Debian
// package.
package yumtest
