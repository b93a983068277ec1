package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/vantageprobe/vantage/internal/yamldoc"
)

// RecurringMaintenance is a maintenance window that comes back on a
// schedule: each time the cron schedule fires, the window applies to the
// matching targets for duration. During it their failures are recorded
// but never confirmed.
type RecurringMaintenance struct {
	// Name identifies the window in the API and logs.
	Name string `yaml:"name"`
	// Matchers select the targets, as Alertmanager's matchers.
	Matchers []string `yaml:"matchers"`
	// Schedule is a standard five-field cron expression (minute hour
	// day-of-month month day-of-week) or a descriptor (@daily, @weekly,
	// @monthly, @yearly, @hourly): when each window starts.
	Schedule string `yaml:"schedule"`
	// Duration is how long each window lasts.
	Duration time.Duration `yaml:"duration"`
	// TimeZone is the IANA zone the schedule is read in; UTC by default.
	TimeZone string `yaml:"time_zone"`
	// Comment says why, for the API.
	Comment string `yaml:"comment"`

	matchers Matchers
	schedule cron.Schedule
}

// cronParser reads standard five-field expressions and descriptors.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// maxWindowsListed bounds Windows, so a schedule firing every minute over
// a long range stays cheap.
const maxWindowsListed = 200000

func (r *RecurringMaintenance) compile(path []any) error {
	switch {
	case r.Name == "":
		return yamldoc.Fail(yamldoc.At(path, "name"), "name must be set")
	case r.Duration <= 0:
		return yamldoc.Fail(yamldoc.At(path, "duration"), "duration of maintenance %q must be positive, got %s", r.Name, r.Duration)
	case strings.HasPrefix(strings.TrimSpace(r.Schedule), "@every"):
		return yamldoc.Fail(yamldoc.At(path, "schedule"), "schedule of maintenance %q: @every has no fixed start times; use a cron expression", r.Name)
	}
	ms, err := ParseMatchers(r.Matchers)
	if err != nil {
		return yamldoc.Fail(yamldoc.At(path, "matchers"), "matchers of maintenance %q: %s", r.Name, err)
	}
	loc := time.UTC
	if r.TimeZone != "" {
		if loc, err = time.LoadLocation(r.TimeZone); err != nil {
			return yamldoc.Fail(yamldoc.At(path, "time_zone"), "time_zone of maintenance %q: unknown time zone %q", r.Name, r.TimeZone)
		}
	}
	sched, err := cronParser.Parse(r.Schedule)
	if err != nil {
		return yamldoc.Fail(yamldoc.At(path, "schedule"), "schedule of maintenance %q: %s", r.Name, err)
	}
	if spec, ok := sched.(*cron.SpecSchedule); ok {
		spec.Location = loc
	}
	r.matchers, r.schedule = ms, sched
	return nil
}

// Selects reports whether the window's matchers select a target; label
// returns the target's value of a label.
func (r *RecurringMaintenance) Selects(label func(string) string) bool {
	return r.matchers.Matches(label)
}

// ActiveAt reports whether a window of the schedule covers t, and when
// that window started.
func (r *RecurringMaintenance) ActiveAt(t time.Time) (time.Time, bool) {
	// The first start after t-duration is the only one whose window can
	// cover t.
	start := r.schedule.Next(t.Add(-r.Duration))
	return start, !start.IsZero() && !start.After(t)
}

// Windows lists the windows of the schedule that overlap [from, to), as
// start and end pairs in order.
func (r *RecurringMaintenance) Windows(from, to time.Time) [][2]time.Time {
	var out [][2]time.Time
	for s := r.schedule.Next(from.Add(-r.Duration)); !s.IsZero() && s.Before(to) && len(out) < maxWindowsListed; s = r.schedule.Next(s) {
		out = append(out, [2]time.Time{s, s.Add(r.Duration)})
	}
	return out
}

// StatusPageConfig is the public status page (served with
// --web.status-page): its title, which targets it shows, and how it
// groups them.
type StatusPageConfig struct {
	// Title heads the page.
	Title string `yaml:"title"`
	// Matchers choose the targets shown; empty: every target.
	Matchers []string `yaml:"matchers"`
	// GroupBy is the label the targets are grouped by (module by default).
	GroupBy string `yaml:"group_by"`

	matchers Matchers
}

// DefaultStatusPage holds the status page's defaults.
var DefaultStatusPage = StatusPageConfig{Title: "Service status", GroupBy: "module"}

// Selects reports whether the status page shows a target.
func (s *StatusPageConfig) Selects(label func(string) string) bool {
	return s.matchers.Matches(label)
}

func (c *CoordinatorConfig) validateMaintenance() error {
	names := map[string]int{}
	for i := range c.Maintenance {
		r := &c.Maintenance[i]
		path := []any{"maintenance", i}
		if err := r.compile(path); err != nil {
			return err
		}
		if j, ok := names[r.Name]; ok {
			return yamldoc.Fail(yamldoc.At(path, "name"), "maintenance %q is listed twice (also maintenance[%d])", r.Name, j)
		}
		names[r.Name] = i
	}
	sp := &c.StatusPage
	if sp.Title == "" {
		sp.Title = DefaultStatusPage.Title
	}
	if sp.GroupBy == "" {
		sp.GroupBy = DefaultStatusPage.GroupBy
	}
	if !labelNameRE.MatchString(sp.GroupBy) {
		return yamldoc.Fail([]any{"status_page", "group_by"}, "group_by must be a label name, got %q", sp.GroupBy)
	}
	if len(sp.Matchers) > 0 {
		ms, err := ParseMatchers(sp.Matchers)
		if err != nil {
			return yamldoc.Fail([]any{"status_page", "matchers"}, "%s", err)
		}
		sp.matchers = ms
	}
	return nil
}

var labelNameRE = matcherNameRE

// String describes the window for logs.
func (r *RecurringMaintenance) String() string {
	return fmt.Sprintf("%s (%s for %s, %s)", r.Name, r.Schedule, r.Duration, r.matchers)
}
