// Checked reads of decoded JSON. Every failure is a CniError 7 whose message names the field by its path
// ("ipam.ranges[0][1].subnet") and shows the offending value, so an operator can find it in the conflist.
// A null reads as absent, as it does for the reference plugins (Go leaves the default in place).

import { CniError, ErrorCode } from "./errors";

export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A short, one-line rendering of a JSON value for messages: strings quoted, long values cut. */
export function showValue(value: unknown): string {
  let text: string;
  try {
    text = value === undefined ? "nothing" : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return text.length > 64 ? `${text.slice(0, 61)}...` : text;
}

/** `Invalid network config: "<path>" must be <expectation>, got <value>`. */
export function invalidField(path: string, expectation: string, value: unknown, code: number = ErrorCode.InvalidNetworkConfig): CniError {
  return new CniError(code, `Invalid network config: "${path}" must be ${expectation}, got ${showValue(value)}`);
}

export function readString(object: JsonObject, key: string, path: string): string | undefined {
  const value = object[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw invalidField(path, "a string", value);
  return value;
}

export function readBoolean(object: JsonObject, key: string, path: string): boolean | undefined {
  const value = object[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "boolean") throw invalidField(path, "true or false", value);
  return value;
}

/** An integer in [min, max]; the message states the bounds. */
export function readInteger(object: JsonObject, key: string, path: string, min: number, max: number): number | undefined {
  const value = object[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw invalidField(path, `an integer between ${min} and ${max}`, value);
  }
  return value;
}

export function readObject(object: JsonObject, key: string, path: string): JsonObject | undefined {
  const value = object[key];
  if (value === undefined || value === null) return undefined;
  if (!isObject(value)) throw invalidField(path, "an object", value);
  return value;
}

export function readArray(object: JsonObject, key: string, path: string): unknown[] | undefined {
  const value = object[key];
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) throw invalidField(path, "an array", value);
  return value;
}

export function readStringArray(object: JsonObject, key: string, path: string): string[] | undefined {
  const array = readArray(object, key, path);
  if (array === undefined) return undefined;
  array.forEach((item, index) => {
    if (typeof item !== "string") throw invalidField(`${path}[${index}]`, "a string", item);
  });
  return array as string[];
}
