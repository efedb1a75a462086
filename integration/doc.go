// Package integration holds kmsdb's tests against real databases and the
// third-party clients we measure ourselves against. It is a module of its own
// so that its heavy test-only dependencies stay out of users' builds.
package integration
