/** Throwaway certificates for tests: the same helper `make demo` uses (hack/localenv/tls.ts). */
export * from "../../hack/localenv/tls.ts";
