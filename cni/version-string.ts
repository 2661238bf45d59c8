// Replaced at build time by esbuild's `define`; the fallback serves tests that run the sources directly.
declare const WEFT_VERSION: string | undefined;
export const version: string = typeof WEFT_VERSION === "string" ? WEFT_VERSION : "0.0.0-dev";
