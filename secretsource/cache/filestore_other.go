//go:build !unix

package cache

// checkPrivateDir checks nothing where permissions are not Unix modes
// (Windows: the directory's ACL is the administrator's to set).
func checkPrivateDir(string) error { return nil }
