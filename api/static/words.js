// Small wording helpers: counts with the right plural, durations people read at a glance.
"use strict";

// plural(1, "frame") -> "1 frame"; plural(3, "stretch", "stretches") -> "3 stretches"
export function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

// A remaining time, rounded the way people say it: "8 s", "about 2 min", "about 1 h 10 min".
export function duration(seconds) {
  const s = Math.max(1, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `about ${m} min`;
  return `about ${Math.floor(m / 60)} h${m % 60 ? ` ${m % 60} min` : ""}`;
}
