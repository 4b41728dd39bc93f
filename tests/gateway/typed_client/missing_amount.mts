// Must not compile: the document marks `amount` required, so the generated types do too.
import createClient from "openapi-fetch";
import type { paths } from "./api.js";

const api = createClient<paths>({ baseUrl: "http://127.0.0.1" });

export const attempt = api.POST("/v1/payments", {
  params: { header: { "Idempotency-Key": crypto.randomUUID() } },
  body: { payer: { fin: "5ZK3T9P" }, serviceCode: "state.duty.passport", reference: "R" },
});
