package prober

import (
	"fmt"
	"log/slog"
	"regexp"
	"slices"

	"github.com/vantageprobe/vantage/prober/result"

	"github.com/miekg/dns"

	"github.com/vantageprobe/vantage/config"
)

// rrChecks are one answer section's prepared validate_*_rrs regexps. Each is
// matched against every record's text form (dns.RR.String()).
type rrChecks struct {
	failIfMatches     []*regexp.Regexp
	failIfAllMatch    []*regexp.Regexp
	failIfNotMatches  []*regexp.Regexp
	failIfNoneMatches []*regexp.Regexp
}

func newRRChecks(v config.DNSRRValidator) (rrChecks, error) {
	var c rrChecks
	for _, s := range []struct {
		key string
		in  []config.Regexp
		out *[]*regexp.Regexp
	}{
		{"fail_if_matches_regexp", v.FailIfMatchesRegexp, &c.failIfMatches},
		{"fail_if_all_match_regexp", v.FailIfAllMatchRegexp, &c.failIfAllMatch},
		{"fail_if_not_matches_regexp", v.FailIfNotMatchesRegexp, &c.failIfNotMatches},
		{"fail_if_none_matches_regexp", v.FailIfNoneMatchesRegexp, &c.failIfNoneMatches},
	} {
		for i, re := range s.in {
			compiled := re.Regexp
			if compiled == nil { // not through config validation (built in code)
				var err error
				if compiled, err = regexp.Compile(re.String()); err != nil {
					return c, fmt.Errorf("%s[%d]: %w", s.key, i, err)
				}
			}
			*s.out = append(*s.out, compiled)
		}
	}
	return c, nil
}

// check returns what is wrong with rrs, or "" when they pass. The semantics
// are blackbox_exporter's, including its reading of fail_if_all_match_regexp:
//   - fail_if_matches_regexp: fail when any record matches any regexp;
//   - fail_if_not_matches_regexp: fail when any record misses any regexp,
//     or when there are no records;
//   - fail_if_none_matches_regexp: fail unless some record matches some
//     regexp (so also when there are no records);
//   - fail_if_all_match_regexp: blackbox_exporter fails when NOT every record
//     matches every regexp ("Not all RRs matched regexp"), despite the name;
//     its own tests assert this, and existing configurations are tuned to it,
//     so a drop-in replacement keeps it.
func (c *rrChecks) check(rrs []dns.RR) string {
	if len(rrs) == 0 && len(c.failIfNotMatches) > 0 {
		return "fail_if_not_matches_regexp is set but no records were returned"
	}
	if len(rrs) == 0 && len(c.failIfNoneMatches) > 0 {
		return "fail_if_none_matches_regexp is set but no records were returned"
	}
	allMatch, anyMatch := true, false
	for _, rr := range rrs {
		s := rr.String()
		if i := slices.IndexFunc(c.failIfMatches, func(re *regexp.Regexp) bool { return re.MatchString(s) }); i >= 0 {
			return fmt.Sprintf("record %q matches fail_if_matches_regexp %q", s, c.failIfMatches[i])
		}
		if i := slices.IndexFunc(c.failIfNotMatches, func(re *regexp.Regexp) bool { return !re.MatchString(s) }); i >= 0 {
			return fmt.Sprintf("record %q does not match fail_if_not_matches_regexp %q", s, c.failIfNotMatches[i])
		}
		for _, re := range c.failIfAllMatch {
			allMatch = allMatch && re.MatchString(s)
		}
		for _, re := range c.failIfNoneMatches {
			anyMatch = anyMatch || re.MatchString(s)
		}
	}
	if len(c.failIfAllMatch) > 0 && !allMatch {
		return "not all records match fail_if_all_match_regexp"
	}
	if len(c.failIfNoneMatches) > 0 && !anyMatch {
		return "no record matches fail_if_none_matches_regexp"
	}
	return ""
}

// validate checks the answer's rcode, then its sections in order, recording
// the first failure.
func (q *dnsProbe) validate(resp *dns.Msg, r *result.Result, logger *slog.Logger) {
	if !slices.Contains(q.validRcodes, resp.Rcode) {
		logger.Error("Rcode is not one of the valid rcodes", "rcode", resp.Rcode, "string_rcode", rcodeName(resp.Rcode))
		r.Fail(result.ReasonDNSRcode, "rcode %s is not one of the valid rcodes", rcodeName(resp.Rcode))
		return
	}
	for _, s := range []struct {
		name   string
		rrs    []dns.RR
		checks *rrChecks
	}{
		{"answer", resp.Answer, &q.answer},
		{"authority", resp.Ns, &q.authority},
		{"additional", resp.Extra, &q.additional},
	} {
		logger.Debug("Validating RRs", "section", s.name)
		if problem := s.checks.check(s.rrs); problem != "" {
			logger.Error("RRs validation failed", "section", s.name, "problem", problem)
			r.Fail(result.ReasonDNSRecords, "%s RRs: %s", s.name, problem)
			return
		}
	}
}
