"""Energy/water-saving and environmental equipment credit (专用设备投资额抵免).

One determination is one purchase of catalogue equipment, for a tax year of its five-year watch, together
with the enterprise's credit position that year:

- investment = invoice total − deductible VAT − transport/installation/commissioning on the invoice;
- credit = ⌈investment × 10 %⌋ (half up), earned in the purchase year only; nothing if the equipment is not
  listed in the catalogue edition
  in force on the purchase day, was bought with a fiscal grant, or was transferred or leased out within
  five years of purchase (then the credit already taken is clawed back);
- the year's CIT payable absorbs credits first in, first out: the oldest brought-forward credit first
  (ages 5, 4, ..., 1 years), then this year's; what is left of a 5-year-old credit expires, the rest moves
  one year older (`carry_next_age1_fen` is this year's unused credit).

Brought-forward credits belong to earlier, already determined purchases, so they are applied even when this
purchase does not qualify: the outputs are the year's whole credit position.
"""

from __future__ import annotations

from core.figures import yuan
from incentives.domain.arith import BP, key_text, mul_div_half_up, years_after
from incentives.domain.facts import FactsError
from incentives.domain.params import Citation
from incentives.domain.programmes.common import catalogue_gate, key_of, not_more_than
from incentives.domain.rules import Context, GateSpec, OutputSpec, Programme

CODE = "equipment_credit"
MAX_AGES = 5
"""Brought-forward credits are given by age 1..5; a carry-forward period above 5 years is refused."""
FISCAL_GRANT = Citation("中华人民共和国企业所得税法实施条例", "第二十八条第二款")
INVESTMENT = Citation("财税〔2008〕48号", "第二条")


def rule(ctx: Context) -> None:
    invoice, vat = ctx.fen("equipment_invoice_fen"), ctx.fen("equipment_deductible_vat_fen")
    ancillary = ctx.fen("equipment_ancillary_fen")
    not_more_than([("equipment_deductible_vat_fen + equipment_ancillary_fen", vat + ancillary,
                    "equipment_invoice_fen", invoice)])
    acquired = ctx.day("equipment_acquired_on")
    transferred = ctx.day("equipment_transferred_on")
    assert acquired is not None
    if transferred is not None and transferred < acquired:
        raise FactsError([("equipment_transferred_on", "cannot be before equipment_acquired_on")])
    rate_bp = ctx.params.number("equipment.credit_rate_bp")
    carry_years = ctx.params.number("equipment.carry_forward_years")
    claw_years = ctx.params.number("equipment.clawback_years")
    if not 1 <= carry_years <= MAX_AGES:
        raise ValueError(f"equipment.carry_forward_years must be 1..{MAX_AGES}, got {carry_years}")

    catalogue_gate(ctx, "catalogue_listed", "catalogue.equipment", acquired, ctx.text("equipment_catalogue_code"))
    ctx.require("no_fiscal_grant", ctx.flag("equipment_fiscal_grant"), False, FISCAL_GRANT,
                remedy_en="equipment bought with a fiscal grant earns no credit",
                remedy_zh="使用财政拨款购置的设备不得抵免")
    acquired_key, transferred_key = key_of(acquired), key_of(transferred)
    window_end = years_after(acquired_key, claw_years)
    within = transferred is not None and transferred_key < window_end
    ctx.gate("not_transferred_within_window", measured=transferred.isoformat() if transferred else None,
             comparator="not before", threshold=key_text(window_end), unit="date", passed=not within,
             citation=ctx.params.citation("equipment.clawback_years"),
             remedy_en=f"transferred or leased out before {key_text(window_end)}: the credit is clawed back",
             remedy_zh=f"自购置之日起{claw_years}年内转让、出租，应补缴已抵免税款")

    investment = ctx.step("investment", "专用设备投资额", "qualifying investment",
                          f"{yuan(invoice)} − {yuan(vat)} − {yuan(ancillary)}",
                          invoice - vat - ancillary, "fen", INVESTMENT)
    generated = 0
    # The credit is earned in the tax year of the purchase; a later year of the five-year watch only
    # applies brought-forward credits and checks for a transfer or lease-out.
    if ctx.eligible and acquired.year == ctx.on.year:
        generated = ctx.step("credit_generated", "当年可抵免额", "credit earned",
                             f"{yuan(investment)} × {rate_bp}/10000", mul_div_half_up(investment, rate_bp, BP),
                             "fen", ctx.params.citation("equipment.credit_rate_bp"))
    # First in, first out: the oldest usable brought-forward credit absorbs the tax first.
    carried = [ctx.fen(f"credit_carry_age{age}_fen") for age in range(1, MAX_AGES + 1)]
    remaining = ctx.fen("cit_payable_fen")
    leftover = [0] * (MAX_AGES + 1)  # index 0: this year's credit; index k: age k
    expired = sum(carried[age - 1] for age in range(carry_years + 1, MAX_AGES + 1))
    for age in range(carry_years, 0, -1):
        use = min(carried[age - 1], remaining)
        remaining -= use
        leftover[age] = carried[age - 1] - use
    use_new = min(generated, remaining)
    remaining -= use_new
    leftover[0] = generated - use_new
    used = ctx.fen("cit_payable_fen") - remaining
    expired += leftover[carry_years]
    nxt = [0] * (MAX_AGES + 1)
    for age in range(0, carry_years):
        nxt[age + 1] = leftover[age]
    ctx.step("credit_used", "当年实际抵免额（先到期先抵）", "credit used this year (oldest first)",
             f"min(credits available, {yuan(ctx.fen('cit_payable_fen'))})", used, "fen",
             ctx.params.citation("equipment.carry_forward_years"))
    carry = sum(nxt)
    clawback = ctx.fen("equipment_credit_used_to_date_fen") if within else 0
    if clawback:
        ctx.step("clawback", "补缴已抵免税款", "credit clawed back", "credit already taken for this equipment",
                 clawback, "fen", ctx.params.citation("equipment.clawback_years"))
    ctx.out(investment_fen=investment, credit_generated_fen=generated, credit_used_fen=used,
            credit_expired_fen=expired, credit_carried_forward_fen=carry,
            **{f"carry_next_age{age}_fen": nxt[age] for age in range(1, MAX_AGES + 1)},
            clawback_fen=clawback)


PROGRAMME = Programme(
    code=CODE,
    name_zh="节能节水和环境保护专用设备投资额抵免",
    name_en="Energy/water-saving and environmental equipment credit",
    summary="10 % of the investment (excl. deductible VAT, transport, installation) credited against the year's "
            "CIT payable; unused credit carried forward up to 5 years, oldest first; clawback if transferred or "
            "leased out within 5 years; none with a fiscal grant; catalogue equipment only.",
    on_meaning="any day of the tax year evaluated (the purchase year earns the credit; later years apply "
               "carried credits and watch for a transfer)",
    citations=(
        Citation("财税〔2008〕48号", "第一条"),
        INVESTMENT,
        Citation("财税〔2008〕48号", "第四条"),
        Citation("财税〔2017〕71号", "第一条"),
        FISCAL_GRANT,
    ),
    facts=("equipment_catalogue_code", "equipment_acquired_on", "equipment_invoice_fen",
           "equipment_deductible_vat_fen", "equipment_ancillary_fen", "equipment_fiscal_grant",
           "equipment_transferred_on", "equipment_credit_used_to_date_fen", "cit_payable_fen",
           *(f"credit_carry_age{age}_fen" for age in range(1, MAX_AGES + 1))),
    gates=(
        GateSpec("catalogue_listed", "设备列入专用设备企业所得税优惠目录", "equipment listed in the catalogue"),
        GateSpec("no_fiscal_grant", "非财政拨款购置", "not bought with a fiscal grant"),
        GateSpec("not_transferred_within_window", "五年内未转让、出租", "not transferred or leased out within 5 years"),
    ),
    outputs=(
        OutputSpec("investment_fen", "专用设备投资额", "qualifying investment"),
        OutputSpec("credit_generated_fen", "当年可抵免额", "credit earned"),
        OutputSpec("credit_used_fen", "当年实际抵免额", "credit used"),
        OutputSpec("credit_expired_fen", "逾期不得抵免额", "credit expired"),
        OutputSpec("credit_carried_forward_fen", "结转以后年度抵免额", "credit carried forward"),
        *(OutputSpec(f"carry_next_age{age}_fen", f"结转额（下年账龄{age}年）", f"carried forward, age {age} next year")
          for age in range(1, MAX_AGES + 1)),
        OutputSpec("clawback_fen", "应补缴税款", "clawback"),
    ),
    headline="credit_used_fen",
    rule=rule,
)
