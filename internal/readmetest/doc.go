// Package readmetest holds the README's Go snippets as Example functions,
// so that each compiles as written, and a test that the README still shows
// them as they are here (readme_test.go).
package readmetest
