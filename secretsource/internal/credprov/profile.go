package credprov

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/aliyun/credentials-go/credentials/providers"
	"gopkg.in/ini.v1"

	"github.com/kmsdb/kmsdb/internal/regfile"
	"github.com/kmsdb/kmsdb/secretsource"
)

// MaxProfileFile bounds the CLI configuration and the credentials file.
const MaxProfileFile = 1 << 20

// errRefusedMode marks a profile whose mode only credentials-go's own HTTP
// client could serve (CloudSSO, OAuth). It stops the default chain: where
// credentials-go would have used that profile, using the next provider
// instead would silently switch identities.
var errRefusedMode = errors.New("refused profile mode")

// maxProfileChain bounds a CLI profile's source_profile chain (credentials-go
// recurses without a bound: a loop would exhaust the stack).
const maxProfileChain = 16

// homeDir is credentials-go's home directory: USERPROFILE on Windows, HOME
// elsewhere.
func homeDir() string {
	if runtime.GOOS == "windows" {
		return os.Getenv("USERPROFILE")
	}
	return os.Getenv("HOME")
}

// cliProfile is the JSON of one profile of the Alibaba Cloud CLI's
// configuration, with credentials-go v1.4.14's field names.
type cliProfile struct {
	Name            string `json:"name"`
	Mode            string `json:"mode"`
	AccessKeyID     string `json:"access_key_id"`
	AccessKeySecret string `json:"access_key_secret"`
	SecurityToken   string `json:"sts_token"`
	RoleArn         string `json:"ram_role_arn"`
	RoleSessionName string `json:"ram_session_name"`
	DurationSeconds int    `json:"expired_seconds"`
	StsRegion       string `json:"sts_region"`
	EnableVpc       bool   `json:"enable_vpc"`
	SourceProfile   string `json:"source_profile"`
	RoleName        string `json:"ram_role_name"`
	OIDCTokenFile   string `json:"oidc_token_file"`
	OIDCToken       string `json:"oidc_token"`
	OIDCProviderARN string `json:"oidc_provider_arn"`
	Policy          string `json:"policy"`
	ExternalID      string `json:"external_id"`
	ProcessCommand  string `json:"process_command"`
}

type cliConfiguration struct {
	Current  string        `json:"current"`
	Profiles []*cliProfile `json:"profiles"`
}

// CLIProfile reads a profile of the Alibaba Cloud CLI's configuration
// (~/.aliyun/config.json) with credentials-go v1.4.14's rules
// (CLIProfileCredentialsProvider), and serves it with this package's
// providers: AK and StsToken are static; RamRoleArn, ChainableRamRoleArn,
// EcsRamRole and OIDC are RAMRoleARN, ECSRAMRole and OIDCRoleARN; External
// is External (the profile's command, run here: no network). CloudSSO
// and OAuth are refused: they would need credentials-go's HTTP client.
//
// The file is read at the first GetCredentials, and again at the next one
// until a profile is built; the profile is then kept.
type CLIProfile struct {
	file, name string
	http       HTTPOptions

	mu    sync.Mutex
	inner providers.CredentialsProvider
}

// NewCLIProfile builds the provider. file empty: ALIBABA_CLOUD_CONFIG_FILE,
// else ~/.aliyun/config.json. name empty: ALIBABA_CLOUD_PROFILE, else the
// configuration's "current" profile. ALIBABA_CLOUD_CLI_PROFILE_DISABLED=true
// refuses it, as credentials-go does. http applies to the role and metadata
// providers of the profile.
func NewCLIProfile(file, name string, http HTTPOptions) (*CLIProfile, error) {
	if strings.EqualFold(os.Getenv("ALIBABA_CLOUD_CLI_PROFILE_DISABLED"), "true") {
		return nil, configError("cli_profile", "the CLI profile is disabled (ALIBABA_CLOUD_CLI_PROFILE_DISABLED=true)")
	}
	if file == "" {
		file = os.Getenv("ALIBABA_CLOUD_CONFIG_FILE")
	}
	if name == "" {
		name = os.Getenv("ALIBABA_CLOUD_PROFILE")
	}
	return &CLIProfile{file: file, name: name, http: http}, nil
}

// GetCredentials returns the profile's credentials.
func (p *CLIProfile) GetCredentials() (*providers.Credentials, error) {
	// The profile's provider is asked outside p.mu: it locks itself, and a
	// refresh it runs must not hold back callers it can serve at once.
	p.mu.Lock()
	if p.inner == nil {
		if err := p.load(); err != nil {
			p.mu.Unlock()
			return nil, err
		}
	}
	inner, name := p.inner, p.name
	p.mu.Unlock()
	return innerCredentials(p.GetProviderName(), fmt.Sprintf("cli_profile: profile %q", name), inner)
}

func (p *CLIProfile) load() error {
	const name = "cli_profile"
	if p.file == "" {
		home := homeDir()
		if home == "" {
			return configError(name, "cannot find the home directory (HOME is not set) for ~/.aliyun/config.json")
		}
		p.file = filepath.Join(home, ".aliyun", "config.json")
	}
	b, err := regfile.Read(p.file, MaxProfileFile)
	if err != nil {
		return configError(name, fmt.Sprintf("the CLI configuration %q %s", p.file, regfile.Describe(err, MaxProfileFile)))
	}
	var conf cliConfiguration
	if err := json.Unmarshal(b, &conf); err != nil {
		// The JSON error names a type or a character, never a value.
		return configError(name, fmt.Sprintf("the CLI configuration %q is not valid: %v", p.file, jsonProblem(err)))
	}
	if len(conf.Profiles) == 0 {
		return configError(name, fmt.Sprintf("the CLI configuration %q has no profiles", p.file))
	}
	if p.name == "" {
		p.name = conf.Current
	}
	inner, err := p.build(&conf, p.name, 0)
	if err != nil {
		return err
	}
	p.inner = inner
	return nil
}

// jsonProblem describes a JSON error without quoting the document.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("JSON syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q must be a JSON %s, not %s", te.Field, te.Type, te.Value)
	}
	return "not a JSON object"
}

// profileError is a KindConfig error about one profile of the CLI
// configuration.
func (p *CLIProfile) profileError(profile, mode, msg string) *Error {
	if mode != "" {
		return configError("cli_profile", fmt.Sprintf("profile %q (mode %s) of %q: %s", profile, mode, p.file, msg))
	}
	return configError("cli_profile", fmt.Sprintf("profile %q of %q: %s", profile, p.file, msg))
}

func (p *CLIProfile) build(conf *cliConfiguration, name string, depth int) (providers.CredentialsProvider, error) {
	var pr *cliProfile
	for _, c := range conf.Profiles {
		if c != nil && c.Name == name {
			pr = c
			break
		}
	}
	if pr == nil {
		return nil, p.profileError(name, "", "no such profile")
	}
	wrap := func(err error) error {
		var e *Error
		if errors.As(err, &e) {
			return fmt.Errorf("cli_profile: profile %q (mode %s) of %q: %w", name, pr.Mode, p.file, err)
		}
		return p.profileError(name, pr.Mode, err.Error())
	}
	sts := STSOptions{RoleARN: pr.RoleArn, RoleSessionName: pr.RoleSessionName, Policy: pr.Policy,
		SessionDuration: time.Duration(pr.DurationSeconds) * time.Second, STSRegionID: pr.StsRegion,
		EnableVPC: pr.EnableVpc, HTTP: p.http}
	var (
		inner providers.CredentialsProvider
		err   error
	)
	switch pr.Mode {
	case "AK":
		inner, err = providers.NewStaticAKCredentialsProviderBuilder().WithAccessKeyId(pr.AccessKeyID).
			WithAccessKeySecret(pr.AccessKeySecret).Build()
	case "StsToken":
		inner, err = providers.NewStaticSTSCredentialsProviderBuilder().WithAccessKeyId(pr.AccessKeyID).
			WithAccessKeySecret(pr.AccessKeySecret).WithSecurityToken(pr.SecurityToken).Build()
	case "RamRoleArn":
		var prev providers.CredentialsProvider
		prev, err = providers.NewStaticAKCredentialsProviderBuilder().WithAccessKeyId(pr.AccessKeyID).
			WithAccessKeySecret(pr.AccessKeySecret).Build()
		if err == nil {
			inner, err = NewRAMRoleARN(prev, pr.ExternalID, sts)
		}
	case "ChainableRamRoleArn":
		if depth >= maxProfileChain {
			return nil, p.profileError(name, pr.Mode, fmt.Sprintf("source_profile chain longer than %d profiles (a loop?)", maxProfileChain))
		}
		prev, err1 := p.build(conf, pr.SourceProfile, depth+1)
		if err1 != nil {
			return nil, fmt.Errorf("cli_profile: profile %q (mode %s) of %q: source profile: %w", name, pr.Mode, p.file, err1)
		}
		inner, err = NewRAMRoleARN(prev, pr.ExternalID, sts)
	case "EcsRamRole":
		inner, err = NewECSRAMRole(ECSOptions{RoleName: pr.RoleName, HTTP: p.http})
	case "OIDC":
		inner, err = NewOIDCRoleARN(OIDCOptions{OIDCProviderARN: pr.OIDCProviderARN, OIDCTokenFile: pr.OIDCTokenFile,
			OIDCToken: pr.OIDCToken}, sts)
	case "External":
		// A local command; no network. Run here, not by credentials-go,
		// which prints the command's whole output (secret included) when
		// it is not JSON and quotes its stderr in errors.
		inner, err = NewExternal(pr.ProcessCommand)
	case "CloudSSO", "OAuth":
		return nil, &Error{Provider: "cli_profile", Kind: secretsource.KindConfig, cause: errRefusedMode,
			Message: fmt.Sprintf("profile %q of %q has mode %s, which kmsdb does not serve: its token exchange would go "+
				"through credentials-go's HTTP client, which follows redirects. Set credentials_type explicitly "+
				"(ak, sts_token, ram_role_arn, oidc_role_arn, ecs_ram_role, credentials_uri), choose a profile of another "+
				"mode with ALIBABA_CLOUD_PROFILE, or set ALIBABA_CLOUD_CLI_PROFILE_DISABLED=true", name, p.file, pr.Mode)}
	default:
		return nil, p.profileError(name, pr.Mode, fmt.Sprintf("unsupported profile mode %q", pr.Mode))
	}
	if err != nil {
		return nil, wrap(err)
	}
	return inner, nil
}

// GetProviderName is "cli_profile".
func (p *CLIProfile) GetProviderName() string { return "cli_profile" }

// Profile reads a profile of the credentials file
// (~/.alibabacloud/credentials, INI) with credentials-go v1.4.14's rules
// (ProfileCredentialsProvider), and serves it with this package's providers:
// type access_key is static, ecs_ram_role is ECSRAMRole, ram_role_arn is
// RAMRoleARN. Any other type (rsa_key_pair included: credentials-go's
// default chain does not read it either) is an error.
//
// The file is read at the first GetCredentials, and again at the next one
// until a profile is built; the profile is then kept.
type Profile struct {
	name string
	http HTTPOptions

	mu    sync.Mutex
	inner providers.CredentialsProvider
}

// NewProfile builds the provider. name empty: ALIBABA_CLOUD_PROFILE, else
// "default". The file is ALIBABA_CLOUD_CREDENTIALS_FILE, else
// ~/.alibabacloud/credentials.
func NewProfile(name string, http HTTPOptions) *Profile {
	if name == "" {
		name = os.Getenv("ALIBABA_CLOUD_PROFILE")
	}
	if name == "" {
		name = "default"
	}
	return &Profile{name: name, http: http}
}

// GetCredentials returns the profile's credentials.
func (p *Profile) GetCredentials() (*providers.Credentials, error) {
	// As CLIProfile: the profile's provider is asked outside p.mu.
	p.mu.Lock()
	if p.inner == nil {
		inner, err := p.load()
		if err != nil {
			p.mu.Unlock()
			return nil, err
		}
		p.inner = inner
	}
	inner := p.inner
	p.mu.Unlock()
	return innerCredentials(p.GetProviderName(), fmt.Sprintf("profile: profile [%s]", p.name), inner)
}

func (p *Profile) load() (providers.CredentialsProvider, error) {
	const name = "profile"
	file := os.Getenv("ALIBABA_CLOUD_CREDENTIALS_FILE")
	if file == "" {
		home := homeDir()
		if home == "" {
			return nil, configError(name, "cannot find the home directory (HOME is not set) for ~/.alibabacloud/credentials")
		}
		file = filepath.Join(home, ".alibabacloud", "credentials")
	}
	b, err := regfile.Read(file, MaxProfileFile)
	if err != nil {
		return nil, configError(name, fmt.Sprintf("the credentials file %q %s", file, regfile.Describe(err, MaxProfileFile)))
	}
	f, err := ini.Load(b)
	if err != nil {
		// ini's errors quote the offending line, which may hold a secret.
		return nil, configError(name, fmt.Sprintf("the credentials file %q is not a valid INI file", file))
	}
	section, err := f.GetSection(p.name)
	if err != nil {
		return nil, configError(name, fmt.Sprintf("the credentials file %q has no profile [%s]", file, p.name))
	}
	bad := func(msg string) error {
		return configError(name, fmt.Sprintf("profile [%s] of %q: %s", p.name, file, msg))
	}
	typ, err := section.GetKey("type")
	if err != nil {
		return nil, bad("no type")
	}
	// value returns the named keys, every one required and, unless empty
	// is allowed, non-empty.
	value := func(empty bool, keys ...string) ([]string, error) {
		vs := make([]string, len(keys))
		for i, k := range keys {
			v, err := section.GetKey(k)
			if err != nil {
				return nil, bad(fmt.Sprintf("type %s needs %s", typ.String(), k))
			}
			if vs[i] = v.String(); vs[i] == "" && !empty {
				return nil, bad(fmt.Sprintf("type %s: %s is empty", typ.String(), k))
			}
		}
		return vs, nil
	}
	var inner providers.CredentialsProvider
	switch typ.String() {
	case "access_key":
		vs, err := value(false, "access_key_id", "access_key_secret")
		if err != nil {
			return nil, err
		}
		inner, err = providers.NewStaticAKCredentialsProviderBuilder().WithAccessKeyId(vs[0]).WithAccessKeySecret(vs[1]).Build()
		if err != nil {
			return nil, bad(err.Error())
		}
	case "ecs_ram_role":
		vs, err := value(true, "role_name")
		if err != nil {
			return nil, err
		}
		if inner, err = NewECSRAMRole(ECSOptions{RoleName: vs[0], HTTP: p.http}); err != nil {
			return nil, fmt.Errorf("profile [%s] of %q: %w", p.name, file, err)
		}
	case "ram_role_arn":
		vs, err := value(false, "access_key_id", "access_key_secret", "role_arn", "role_session_name")
		if err != nil {
			return nil, err
		}
		prev, err := providers.NewStaticAKCredentialsProviderBuilder().WithAccessKeyId(vs[0]).WithAccessKeySecret(vs[1]).Build()
		if err != nil {
			return nil, bad(err.Error())
		}
		inner, err = NewRAMRoleARN(prev, "", STSOptions{RoleARN: vs[2], RoleSessionName: vs[3],
			Policy: section.Key("policy").String(), SessionDuration: defaultSessionDuration, HTTP: p.http})
		if err != nil {
			return nil, fmt.Errorf("profile [%s] of %q: %w", p.name, file, err)
		}
	case "rsa_key_pair":
		return nil, bad("type rsa_key_pair is not supported (deprecated, and credentials-go's default chain does not read it " +
			"either): use access_key or ram_role_arn")
	default:
		return nil, bad(fmt.Sprintf("unsupported type %q (access_key, ecs_ram_role or ram_role_arn)", typ.String()))
	}
	return inner, nil
}

// GetProviderName is "profile".
func (p *Profile) GetProviderName() string { return "profile" }

// innerCredentials asks inner and names the credentials outer/inner, as
// credentials-go's profile providers do; label prefixes inner's errors.
func innerCredentials(outer, label string, inner providers.CredentialsProvider) (*providers.Credentials, error) {
	cc, err := inner.GetCredentials()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	name := cc.ProviderName
	if name == "" {
		name = inner.GetProviderName()
	}
	return &providers.Credentials{AccessKeyId: cc.AccessKeyId, AccessKeySecret: cc.AccessKeySecret,
		SecurityToken: cc.SecurityToken, ProviderName: outer + "/" + name}, nil
}
