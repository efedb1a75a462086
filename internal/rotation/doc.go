// Package rotation is the driver kit behind drivers/mysqlkms and
// drivers/pgkms: a Login carries the rotation state of one secret's
// connections, Run opens one connection under the rotation algorithm (see
// the documentation of package connector), Continue takes over a login
// that a pool made itself (pgxpool's BeforeConnect with Login.Account),
// and Connector is the database/sql driver.Connector built on Run.
//
// It is internal: applications use the drivers; what they see of the
// rotation (connector.Error, connector.Class, connector.Stats, the default
// cache) lives in package connector, which must never import this one.
package rotation
