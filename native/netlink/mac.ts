// MAC addresses ⇄ the 6 bytes netlink carries, and the hex form of any other link-layer address.
import { NetlinkInputError } from "./errors";

const HEX_BYTES: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** Lowercase, colon-separated: "aa:bb:cc:dd:ee:ff". */
export function formatMac(buffer: Buffer, offset: number, length: number): string {
  if (length === 6) {
    const b = buffer;
    const o = offset;
    return `${HEX_BYTES[b[o]!]}:${HEX_BYTES[b[o + 1]!]}:${HEX_BYTES[b[o + 2]!]}:${HEX_BYTES[b[o + 3]!]}:${HEX_BYTES[b[o + 4]!]}:${HEX_BYTES[b[o + 5]!]}`;
  }
  return formatHex(buffer, offset, length);
}

/** Bytes as colon-separated hex pairs: what an address of an unexpected length reads as. */
export function formatHex(buffer: Buffer, offset: number, length: number): string {
  let text = "";
  for (let i = 0; i < length; i++) text += (i ? ":" : "") + HEX_BYTES[buffer[offset + i]!];
  return text;
}

const MAC = /^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}$/;

/** Writes the 6 bytes of "aa:bb:cc:dd:ee:ff" (or with dashes) at `offset`. */
export function writeMac(buffer: Buffer, offset: number, text: string): void {
  const normalized = text.length === 17 ? text.replaceAll("-", ":") : text;
  if (!MAC.test(normalized)) throw new NetlinkInputError(`Cannot parse MAC address "${text}"`, text);
  for (let i = 0; i < 6; i++) buffer[offset + i] = Number.parseInt(normalized.slice(i * 3, i * 3 + 2), 16);
}
