// Package rpmver compares RPM versions as rpm does.
//
// Compare is rpmvercmp: a version string is split into runs of digits and
// runs of letters (anything else only separates them); digit runs compare as
// numbers and are newer than letter runs, letter runs compare as strings; a
// '~' sorts before everything, even the end of the string ("1.0~rc1" <
// "1.0"), and a '^' sorts after the end but before anything else ("1.0" <
// "1.0^git1" < "1.0.1").
//
// An EVR is [epoch:]version[-release]. CompareEVR orders two of them (epoch
// first, numerically; a missing epoch is 0), and Overlaps decides whether a
// dependency "name OP evr" is satisfied by a provide "name OP evr", with
// rpm's range rules: a side without a release matches any release.
package rpmver
