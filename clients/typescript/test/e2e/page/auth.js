// A stand-in for your auth library's server-side session lookup (Clerk's auth(), NextAuth's
// getServerSession, …): here the signed-in user is named by a cookie the test sets.
export async function auth(request) {
  const cookie = request.headers.get("cookie") ?? "";
  const userId = /(?:^|;\s*)demo_user=([^;]+)/.exec(cookie)?.[1];
  const orgId = /(?:^|;\s*)demo_org=([^;]+)/.exec(cookie)?.[1];
  return { userId: userId ? decodeURIComponent(userId) : null, orgId: orgId ? decodeURIComponent(orgId) : null };
}
