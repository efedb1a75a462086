// Package frameworks shows kmsdb under GORM and sqlx (see example_test.go):
// each takes the *sql.DB that sql.OpenDB(mysqlkms.NewConnector(...)) or
// sql.OpenDB(pgkms.NewConnector(...)) returns, so every connector option
// applies and rotations stay invisible to the framework.
//
// It is a module of its own (go.mod here, the library by replace) so that
// the library's go.mod does not carry GORM and sqlx.
//
// sqlx and pgkms: sqlx picks the bind variable style from the driver name,
// and does not know "pgkms": without sqlx.BindDriver("pgkms", sqlx.DOLLAR),
// Rebind leaves "?" in place and PostgreSQL answers 42601 (syntax error).
// sqlx.NewDb(db, "pgx") on a pgkms *sql.DB picks the right style too.
package frameworks
