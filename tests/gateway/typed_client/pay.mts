// A frontend developer's program: types generated from the gateway's /openapi.json by
// openapi-typescript (into ./api.d.ts, not checked in), calls made with openapi-fetch.
// It pays the passport duty by card and prints what the citizen would see.
import createClient from "openapi-fetch";
import type { paths } from "./api.js";

const { GATEWAY_URL, TOKEN, FIN } = process.env;
if (!GATEWAY_URL || !TOKEN || !FIN) throw new Error("GATEWAY_URL, TOKEN and FIN are needed");

const api = createClient<paths>({ baseUrl: GATEWAY_URL, headers: { Authorization: `Bearer ${TOKEN}` } });

function answered<T>(result: { data?: T; error?: unknown; response: Response }, what: string): T {
  if (result.data === undefined) {
    throw new Error(`${what}: HTTP ${result.response.status} ${JSON.stringify(result.error)}`);
  }
  return result.data;
}

async function main(): Promise<void> {
  const catalogue = answered(await api.GET("/v1/services"), "list services");
  const passport = (catalogue.services ?? []).find((s) => s.code === "state.duty.passport");
  if (!passport?.code || !passport.fixedFee) throw new Error("no fixed-fee passport duty in the catalogue");

  const created = answered(
    await api.POST("/v1/payments", {
      params: { header: { "Idempotency-Key": crypto.randomUUID() } },
      body: { payer: { fin: FIN }, serviceCode: passport.code, amount: passport.fixedFee, reference: "PASS-TS-1" },
    }),
    "create payment",
  );
  const paymentId = created.paymentId;
  if (!paymentId) throw new Error("the created payment has no id");

  const paid = answered(
    await api.POST("/v1/payments/{payment_id}:confirm", {
      params: { path: { payment_id: paymentId }, header: { "Idempotency-Key": crypto.randomUUID() } },
      body: { card: { number: "4444333322221111", expiryMonth: 12, expiryYear: 2031, cvc: "123" } },
    }),
    "confirm payment",
  );
  const receipt = answered(
    await api.GET("/v1/payments/{payment_id}/receipt", { params: { path: { payment_id: paymentId } } }),
    "get receipt",
  );
  console.log(JSON.stringify({ paymentId, status: paid.status, receipt }));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
