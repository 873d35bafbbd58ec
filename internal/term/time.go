package term

import (
	"fmt"
	"time"
)

// Timestamp is a time as systemctl prints one: weekday, date, time and
// zone, in loc (time.Local for people).
func Timestamp(t time.Time, loc *time.Location) string {
	return t.In(loc).Format("Mon 2006-01-02 15:04:05 MST")
}

// TimestampAgo is "Sat 2026-11-21 06:10:02 UTC; 3min ago", as systemctl
// status prints when a unit changed state.
func TimestampAgo(t, now time.Time, loc *time.Location) string {
	return Timestamp(t, loc) + "; " + Ago(t, now)
}

// Units of systemd's relative times (time-util.h): a month is 30.44 days,
// a year 365.25.
const (
	day   = 24 * time.Hour
	week  = 7 * day
	month = 2629800 * time.Second
	year  = 31557600 * time.Second
)

// Ago is how long before now t was, as systemd words it
// (format_timestamp_relative): "now", "980ms ago", "42s ago", "2min 5s ago",
// "3min ago", "1h 5min ago", "7h ago", "1 day 3h ago", "3 days ago",
// "2 weeks 1 day ago", "4 months 2 days ago", "1 year 2 months ago"; a
// time after now is "... left".
func Ago(t, now time.Time) string {
	d, suffix := now.Sub(t), "ago"
	if d < 0 {
		d, suffix = -d, "left"
	}
	plural := func(n int64, one, many string) string {
		if n == 1 {
			return one
		}
		return many
	}
	switch {
	case d >= year:
		y, m := int64(d/year), int64(d%year/month)
		return fmt.Sprintf("%d %s %d %s %s", y, plural(y, "year", "years"), m, plural(m, "month", "months"), suffix)
	case d >= month:
		m, dd := int64(d/month), int64(d%month/day)
		return fmt.Sprintf("%d %s %d %s %s", m, plural(m, "month", "months"), dd, plural(dd, "day", "days"), suffix)
	case d >= week:
		w, dd := int64(d/week), int64(d%week/day)
		return fmt.Sprintf("%d %s %d %s %s", w, plural(w, "week", "weeks"), dd, plural(dd, "day", "days"), suffix)
	case d >= 2*day:
		return fmt.Sprintf("%d days %s", int64(d/day), suffix)
	case d >= 25*time.Hour:
		return fmt.Sprintf("1 day %dh %s", int64((d-day)/time.Hour), suffix)
	case d >= 6*time.Hour:
		return fmt.Sprintf("%dh %s", int64(d/time.Hour), suffix)
	case d >= time.Hour:
		return fmt.Sprintf("%dh %dmin %s", int64(d/time.Hour), int64(d%time.Hour/time.Minute), suffix)
	case d >= 5*time.Minute:
		return fmt.Sprintf("%dmin %s", int64(d/time.Minute), suffix)
	case d >= time.Minute:
		return fmt.Sprintf("%dmin %ds %s", int64(d/time.Minute), int64(d%time.Minute/time.Second), suffix)
	case d >= time.Second:
		return fmt.Sprintf("%ds %s", int64(d/time.Second), suffix)
	case d >= time.Millisecond:
		return fmt.Sprintf("%dms %s", int64(d/time.Millisecond), suffix)
	case d > 0:
		return fmt.Sprintf("%dus %s", int64(d/time.Microsecond), suffix)
	}
	return "now"
}
