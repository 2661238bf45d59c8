// Lint: typescript-eslint's recommended rules, plus the layering rule of ARCHITECTURE.md (agent → cni → native)
// and the one home of IP addresses (ip-num is imported by native/addresses only).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const IP_NUM = { name: "ip-num", message: "IP addresses have one home: import native/addresses." };

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "test-results/", ".cache/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: "readonly", Buffer: "readonly", console: "readonly", setTimeout: "readonly", clearTimeout: "readonly", setInterval: "readonly", clearInterval: "readonly", URL: "readonly", TextDecoder: "readonly", TextEncoder: "readonly", AbortController: "readonly", AbortSignal: "readonly", NodeJS: "readonly", performance: "readonly", queueMicrotask: "readonly", setImmediate: "readonly" } },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
  {
    files: ["native/**/*.ts"],
    rules: { "no-restricted-imports": ["error", { patterns: ["**/cni/**", "**/agent/**", "../cni/*", "../agent/*"], paths: [IP_NUM] }] },
  },
  {
    // The one home of IP addresses, and so of ip-num.
    files: ["native/addresses/**/*.ts"],
    rules: { "no-restricted-imports": ["error", { patterns: ["**/cni/**", "**/agent/**", "../cni/*", "../agent/*"] }] },
  },
  {
    files: ["cni/**/*.ts"],
    rules: { "no-restricted-imports": ["error", { patterns: ["**/agent/**", "../agent/*", "../../agent/*", "@kubernetes/*"], paths: [IP_NUM] }] },
  },
  {
    files: ["agent/**/*.ts"],
    rules: { "no-restricted-imports": ["error", { paths: [IP_NUM] }] },
  },
);
