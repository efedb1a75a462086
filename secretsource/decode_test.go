package secretsource_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
)

func secretWith(typ, value, ext string) *secretsource.Secret {
	return secretsource.NewSecret(secretsource.Fields{Name: "s1", VersionID: "v1", SecretType: typ, Value: []byte(value), ExtendedConfig: ext})
}

func TestDecodeDBAccount(t *testing.T) {
	tests := []struct {
		name, typ, value, ext string
		want                  secretsource.DBAccount
	}{
		{"rds", "Rds", `{"AccountName":"app","AccountPassword":"p=="}`, "",
			secretsource.DBAccount{Username: "app", Password: "p=="}},
		{"rds custom data", "Rds", `{"AccountName":"app","AccountPassword":"p"}`,
			`{"SecretSubType":"SingleUser","DBInstanceId":"rm-1","CustomData":{"host":"db.example","port":"3306","dbname":"shop"}}`,
			secretsource.DBAccount{Username: "app", Password: "p", Host: "db.example", Port: 3306, DBName: "shop"}},
		{"rds custom data as string", "Rds", `{"AccountName":"app","AccountPassword":"p"}`,
			`{"CustomData":"{\"Endpoint\":\"rm-1.mysql.rds.aliyuncs.com:3307\",\"DBName\":\"d\"}"}`,
			secretsource.DBAccount{Username: "app", Password: "p", Host: "rm-1.mysql.rds.aliyuncs.com", Port: 3307, DBName: "d"}},
		{"value wins over custom data", "Rds", `{"AccountName":"app","AccountPassword":"p","host":"h1"}`,
			`{"CustomData":{"host":"h2","port":5432}}`,
			secretsource.DBAccount{Username: "app", Password: "p", Host: "h1", Port: 5432}},
		{"aws style", "Generic", `{"username":"u","password":"p","host":"h","port":5432,"dbname":"d","engine":"Postgres"}`, "",
			secretsource.DBAccount{Username: "u", Password: "p", Host: "h", Port: 5432, DBName: "d", Engine: "postgres"}},
		{"jdbc style", "Generic", `{"AccountName":"u","AccountPassword":"p","Endpoint":"e","Port":"3306","DBName":"d"}`, "",
			secretsource.DBAccount{Username: "u", Password: "p", Host: "e", Port: 3306, DBName: "d"}},
		{"case insensitive", "Generic", `{"USERNAME":"u","Password":"p","HOST":"h","PORT":" 1 "}`, "",
			secretsource.DBAccount{Username: "u", Password: "p", Host: "h", Port: 1}},
		{"endpoint with port, explicit port wins", "Generic", `{"user":"u","password":"p","Endpoint":"h:1","port":2}`, "",
			secretsource.DBAccount{Username: "u", Password: "p", Host: "h", Port: 2}},
		{"ipv6 host untouched", "Generic", `{"user":"u","password":"p","host":"::1"}`, "",
			secretsource.DBAccount{Username: "u", Password: "p", Host: "::1"}},
		{"null fields absent", "Generic", `{"username":"u","password":"p","port":null,"host":null}`, "",
			secretsource.DBAccount{Username: "u", Password: "p"}},
		{"empty port string", "Generic", `{"username":"u","password":"p","port":""}`, "",
			secretsource.DBAccount{Username: "u", Password: "p"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := secretsource.DecodeDBAccount(secretWith(tt.typ, tt.value, tt.ext))
			if err != nil {
				t.Fatal(err)
			}
			tt.want.SecretName, tt.want.VersionID = "s1", "v1"
			if got != tt.want {
				t.Errorf("got %+v (password ok: %v)\nwant %+v", got, got.Password == tt.want.Password, tt.want)
			}
		})
	}
}

// decodeErrTests are broken values; wantField is the field the error must
// name, and none of them may put "hunter2" in the error.
var decodeErrTests = []struct {
	name, value, ext, wantField string
}{
	{"not json", `hunter2`, "", ""},
	{"json array", `["hunter2"]`, "", ""},
	{"broken json", `{"AccountName":"hunter2"`, "", ""},
	{"json string", `"hunter2"`, "", ""},
	{"missing password", `{"AccountName":"app"}`, "", "AccountPassword"},
	{"empty password", `{"AccountName":"app","AccountPassword":""}`, "", "AccountPassword"},
	{"missing user", `{"AccountPassword":"hunter2"}`, "", "AccountName"},
	{"password not a string", `{"AccountName":"a","AccountPassword":123456}`, "", "AccountPassword"},
	{"user not a string", `{"username":{"x":"hunter2"},"password":"hunter2"}`, "", "username"},
	{"port out of range", `{"username":"u","password":"hunter2","port":70000}`, "", "port"},
	{"port text", `{"username":"u","password":"hunter2","port":"hunter2"}`, "", "port"},
	{"port float", `{"username":"u","password":"hunter2","Port":3306.5}`, "", "Port"},
	{"port bool", `{"username":"u","password":"hunter2","port":true}`, "", "port"},
	{"ext not json", `{"username":"u","password":"hunter2"}`, `hunter2`, "ExtendedConfig"},
	{"custom data not object", `{"username":"u","password":"hunter2"}`, `{"CustomData":42}`, "ExtendedConfig.CustomData"},
	{"custom data bad port", `{"username":"u","password":"hunter2"}`, `{"CustomData":{"port":"x"}}`, "ExtendedConfig.CustomData.port"},
}

func TestDecodeDBAccountErrors(t *testing.T) {
	for _, tt := range decodeErrTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := secretsource.DecodeDBAccount(secretWith("Rds", tt.value, tt.ext))
			checkDecodeErr(t, err, tt.wantField)
		})
	}
	if _, err := secretsource.DecodeDBAccount(nil); !errors.Is(err, secretsource.ErrConfig) {
		t.Errorf("nil secret: %v", err)
	}
}

func checkDecodeErr(t *testing.T, err error, wantField string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if strings.Contains(msg, "hunter2") || strings.Contains(msg, "123456") {
		t.Errorf("error leaks the value: %s", msg)
	}
	if !strings.Contains(msg, `"s1"`) {
		t.Errorf("error does not name the secret: %s", msg)
	}
	if !errors.Is(err, secretsource.ErrConfig) || secretsource.IsRetryable(err) {
		t.Errorf("error is not a permanent config error: %s", msg)
	}
	var fe *secretsource.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("no FieldError in %s", msg)
	}
	if fe.Field != wantField {
		t.Errorf("field = %q, want %q (%s)", fe.Field, wantField, msg)
	}
}

func TestDecodeAccessKey(t *testing.T) {
	s := secretWith("RAMCredentials", `{"AccessKeyId":"LTAI1","AccessKeySecret":"sk==","GenerateTimestamp":"2016-03-25T10:42:40Z"}`, "")
	k, err := secretsource.DecodeAccessKey(s)
	if err != nil {
		t.Fatal(err)
	}
	want := secretsource.AccessKey{ID: "LTAI1", Secret: "sk==", GenerateTimestamp: time.Date(2016, 3, 25, 10, 42, 40, 0, time.UTC), SecretName: "s1", VersionID: "v1"}
	if k != want {
		t.Errorf("got %v, want %v", k, want)
	}
	if k, err := secretsource.DecodeAccessKey(secretWith("Generic", `{"accesskeyid":"a","accesskeysecret":"b"}`, "")); err != nil || k.ID != "a" || k.Secret != "b" || !k.GenerateTimestamp.IsZero() {
		t.Errorf("lower-case keys without timestamp: %v %v", k, err)
	}
	for _, tt := range []struct{ name, value, field string }{
		{"not json", `hunter2`, ""},
		{"missing id", `{"AccessKeySecret":"hunter2"}`, "AccessKeyId"},
		{"missing secret", `{"AccessKeyId":"a"}`, "AccessKeySecret"},
		{"secret not string", `{"AccessKeyId":"a","AccessKeySecret":123456}`, "AccessKeySecret"},
		{"bad timestamp", `{"AccessKeyId":"a","AccessKeySecret":"hunter2","GenerateTimestamp":"yesterday"}`, "GenerateTimestamp"},
		{"timestamp number", `{"AccessKeyId":"a","AccessKeySecret":"hunter2","GenerateTimestamp":1}`, "GenerateTimestamp"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := secretsource.DecodeAccessKey(secretWith("RAMCredentials", tt.value, ""))
			checkDecodeErr(t, err, tt.field)
		})
	}
}

const testPEM = "-----BEGIN RSA PRIVATE KEY-----\naHVudGVyMg==\n-----END RSA PRIVATE KEY-----\n"

func TestDecodeECSCredential(t *testing.T) {
	c, err := secretsource.DecodeECSCredential(secretWith("ECS", `{"UserName":"root","Password":"pw"}`, ""))
	if err != nil || c.UserName != "root" || c.Password != "pw" || c.IsKeyPair() {
		t.Errorf("password: %v %v", c, err)
	}
	c, err = secretsource.DecodeECSCredential(secretWith("ECS", fmt.Sprintf(`{"UserName":"root","PublicKey":"ssh-rsa AAA","PrivateKey":%q}`, testPEM), ""))
	if err != nil || !c.IsKeyPair() || c.PublicKey != "ssh-rsa AAA" || c.PrivateKey != testPEM {
		t.Errorf("key pair: %v %v", c, err)
	}
	if strings.Contains(fmt.Sprintf("%v %+v %#v %d", c, c, c, c), "aHVudGVyMg") {
		t.Error("private key printed")
	}
	for _, tt := range []struct{ name, value, field string }{
		{"not json", `hunter2`, ""},
		{"no user", `{"Password":"hunter2"}`, "UserName"},
		{"neither", `{"UserName":"root"}`, "Password"},
		{"key not pem", `{"UserName":"root","PrivateKey":"hunter2"}`, "PrivateKey"},
		{"password not string", `{"UserName":"root","Password":123456}`, "Password"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := secretsource.DecodeECSCredential(secretWith("ECS", tt.value, ""))
			checkDecodeErr(t, err, tt.field)
		})
	}
}

func ExampleDecodeDBAccount() {
	s := secretsource.NewSecret(secretsource.Fields{
		Name: "db/app", VersionID: "v3", SecretType: secretsource.TypeGeneric,
		Value: []byte(`{"username":"app","password":"s3cret==","host":"db.internal","port":"5432","dbname":"shop"}`),
	})
	a, err := secretsource.DecodeDBAccount(s)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(a)
	// Output: DBAccount(user="app" host="db.internal" port=5432 db="shop" secret="db/app" version="v3" password=REDACTED)
}

func ExampleDecodeAccessKey() {
	s := secretsource.NewSecret(secretsource.Fields{
		Name: "acs/ram/user/app", VersionID: "v1", SecretType: secretsource.TypeRAM,
		Value: []byte(`{"AccessKeyId":"LTAI4Fexample","AccessKeySecret":"never-printed","GenerateTimestamp":"2016-03-25T10:42:40Z"}`),
	})
	k, err := secretsource.DecodeAccessKey(s)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(k)
	// Output: AccessKey(id="LTAI4Fexample" generated=2016-03-25T10:42:40Z secret="acs/ram/user/app" version="v1" accessKeySecret=REDACTED)
}
