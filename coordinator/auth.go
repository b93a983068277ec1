package coordinator

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/vantageprobe/vantage/coordinator/config"
	"github.com/vantageprobe/vantage/internal/jsonapi"
	"github.com/vantageprobe/vantage/internal/webserver"
)

// legacyTokenName names --api.token-file's token, which grants the report
// and write scopes.
const legacyTokenName = "--api.token-file"

// apiToken is one bearer token of the API.
type apiToken struct {
	name   string
	file   *webserver.TokenFile
	scopes []string
	owner  string
}

// apiTokens are the API's tokens: api_tokens and --api.token-file's. A
// scope that no token grants is open to every request, as the API is
// without tokens.
type apiTokens struct {
	tokens []apiToken
}

// caller is who made a request: the token's name and owner, both empty
// when the scope is open.
type caller struct {
	token string
	owner string
}

// newAPITokens reads the configured tokens' files; legacy, when set, is
// --api.token-file's.
func newAPITokens(conf []config.APIToken, legacy *webserver.TokenFile) (*apiTokens, error) {
	t := &apiTokens{}
	for _, c := range conf {
		f, err := webserver.NewTokenFile(c.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("api_tokens: token %q: %w", c.Name, err)
		}
		t.tokens = append(t.tokens, apiToken{name: c.Name, file: f, scopes: c.Scopes, owner: c.Owner})
	}
	if legacy != nil {
		t.tokens = append(t.tokens, apiToken{name: legacyTokenName, file: legacy, scopes: []string{config.ScopeReport, config.ScopeWrite}})
	}
	return t, nil
}

// guarded reports whether some token grants scope.
func (t *apiTokens) guarded(scope string) bool {
	return slices.ContainsFunc(t.tokens, func(a apiToken) bool { return slices.Contains(a.scopes, scope) })
}

// authError is a refused request: its status and why.
type authError struct {
	status int
	err    error
}

// authorize says who r comes from, when its bearer token grants scope.
func (t *apiTokens) authorize(r *http.Request, scope string) (caller, *authError) {
	if !t.guarded(scope) {
		return caller{}, nil
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		return caller{}, &authError{http.StatusUnauthorized, fmt.Errorf(`no bearer token: want an "Authorization: Bearer TOKEN" header with a token granting the %s scope`, scope)}
	}
	var unreadable []error
	for _, a := range t.tokens {
		err := a.file.Check(r)
		if webserver.Unreadable(err) {
			unreadable = append(unreadable, fmt.Errorf("token %q: %w", a.name, err))
			continue
		}
		if err != nil {
			continue
		}
		if !slices.Contains(a.scopes, scope) {
			return caller{}, &authError{http.StatusForbidden, fmt.Errorf("token %q does not grant the %s scope (it grants %s)", a.name, scope, strings.Join(a.scopes, ", "))}
		}
		return caller{token: a.name, owner: a.owner}, nil
	}
	if len(unreadable) > 0 {
		// The token might be one that cannot be read now: refuse without
		// saying the token is wrong.
		return caller{}, &authError{http.StatusServiceUnavailable, fmt.Errorf("cannot authenticate requests: %w", errors.Join(unreadable...))}
	}
	return caller{}, &authError{http.StatusUnauthorized, errors.New("unauthorized: the bearer token is none of the API's tokens")}
}

// scoped serves h to the requests whose token grants scope (all requests
// while no token grants it), with the caller; the others are answered
// 401, 403 or 503, counted and logged.
func (c *Coordinator) scoped(scope string, h func(http.ResponseWriter, *http.Request, caller)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who, aerr := c.tokens.Load().authorize(r, scope)
		if aerr == nil {
			h(w, r, who)
			return
		}
		c.metrics.unauthorized.Inc()
		c.logger.Warn("Refused an API request", "remote", r.RemoteAddr, "path", r.URL.Path, "scope", scope, "err", aerr.err)
		if aerr.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vantage"`)
		}
		jsonapi.WriteError(w, aerr.status, aerr.err)
	})
}

// scopedHandler is scoped for a handler that does not need the caller.
func (c *Coordinator) scopedHandler(scope string, h http.Handler) http.Handler {
	return c.scoped(scope, func(w http.ResponseWriter, r *http.Request, _ caller) { h.ServeHTTP(w, r) })
}
