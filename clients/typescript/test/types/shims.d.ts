// Just enough of Next.js, Clerk and React for the README snippets to type-check without them.
declare const process: { env: Record<string, string | undefined> };

declare module "@clerk/nextjs/server" {
  export function auth(): Promise<{ userId: string | null; orgId?: string | null | undefined }>;
}

declare module "@clerk/nextjs" {
  export function useAuth(): { getToken(options?: { template?: string }): Promise<string | null> };
}

declare module "react" {
  export function useMemo<T>(factory: () => T, deps: readonly unknown[]): T;
}
