package webui

import (
	"fmt"
	"time"
)

// location is the time zone of the timezone setting, UTC when unset.
func (u *UI) location() *time.Location {
	if u.o.Settings != nil {
		if loc, err := time.LoadLocation(u.o.Settings.Effective().Config.TimeZone); err == nil {
			return loc
		}
	}
	return time.UTC
}

// formatTime shows t in loc to the second; the zero time is "never".
func formatTime(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "never"
	}
	return t.In(loc).Format("2006-01-02 15:04:05 MST")
}

// formatMillis shows a unix-millisecond time in loc.
func formatMillis(ms int64, loc *time.Location) string {
	if ms == 0 {
		return "never"
	}
	return formatTime(time.UnixMilli(ms), loc)
}

// formatDuration shows d coarsely: "3d 4h", "5h 2m", "42s".
func formatDuration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd %dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh %dm", d/time.Hour, d%time.Hour/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm %ds", d/time.Minute, d%time.Minute/time.Second)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// formatBytes shows n in binary units.
func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
