// Sources' claimLocal takes the node's name and a function of the source's hints; tests that announce a fixed
// announcement spread this: source.claimLocal(...announcing(local)).
import type { LocalAnnouncement, LocalHints } from "../../agent/model";

export function announcing(announcement: LocalAnnouncement): [string, (hints: LocalHints) => LocalAnnouncement] {
  return [announcement.name, () => announcement];
}
