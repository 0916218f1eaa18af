// Package atomicfile replaces files so that a reader, or a crash, sees
// either the old content or the new, never a part: write a temporary file
// in the same directory, sync it, rename it over the target, sync the
// directory. WriteNamed does the same for a file named after its content
// (a blob named by its digest).
package atomicfile
