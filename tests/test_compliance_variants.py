"""Generalisation check: hand-written calls with wording, banks, products and names that are NOT in calls/dev.

Each dialogue lists its turns (speaker, text) and the findings a reviewer would expect (vocabulary rule, turn).
The engine must raise exactly those (per rule and turn), which guards against rules keyed on dev wording.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from intelligence.compliance import ComplianceEngine, load_packs
from intelligence.compliance.text import TextNormalizer
from intelligence.types import TranscriptEvent

A, C = "agent", "customer"


@dataclass(frozen=True)
class Dialogue:
    name: str
    language: str
    turns: tuple[tuple[str, str], ...]
    expected: tuple[tuple[str, int], ...]  # (vocabulary rule, turn); absent rules: any turn of the call
    absent_ok: tuple[str, ...] = ()


ZH_OPEN = (A, "您好，我是嘉禾银行理财经理郑宁，工号四四一二，今天的过程全程录音录像，您同意吗？")
EN_OPEN = (A, "Good morning, you're through to Priya at Westfield Bank. Calls to this line are monitored and recorded.")

DIALOGUES = [
    Dialogue("en_clean_servicing", "en", (
        EN_OPEN,
        (C, "Hi Priya, I want to check why my standing order didn't go out."),
        (A, "Sure. Can I take your full name and postcode, please?"),
        (C, "Tom Baker, SW1A 2AA."),
        (A, "Thanks Mr Baker. The standing order failed because the payee's details changed. I've updated it now."),
        (C, "Great, thanks."),
        (A, "Is there anything else I can help with? Have a good day."),
    ), ()),
    Dialogue("en_no_notice_no_name", "en", (
        (A, "Hello, Westfield Bank, how can I help?"),
        (C, "I think someone used my card in Spain."),
        (A, "Let me check that. Can you confirm your date of birth?"),
        (C, "Fourth of May, nineteen seventy."),
        (A, "Thanks. I've frozen the card and a new one is on the way."),
    ), (("consent_notice_missing", 0), ("agent_identity_missing", 0))),
    Dialogue("en_pan_words_and_cvv", "en", (
        EN_OPEN,
        (C, "I want to pay my bill. My card is four one one one, one one one one, one one one one, one one one one."),
        (A, "Please don't read the number out, we'll send you a secure link instead."),
        (C, "Oh, okay. And the security number on the back is seven two nine if you need it."),
        (A, "We don't need it. The link is on its way."),
    ), (("pci_card_number_spoken", 1), ("pci_cvv_spoken", 3))),
    Dialogue("en_last_four_only", "en", (
        EN_OPEN,
        (A, "Which card is it? Only the last four digits, please."),
        (C, "It ends in 8812, and my reference was 4451 2290."),
        (A, "Thanks, found it."),
    ), ()),
    Dialogue("en_agent_asks_otp", "en", (
        EN_OPEN,
        (C, "I can't log in to the app."),
        (A, "No problem. Could you read me the one-time code we just texted you?"),
        (C, "It says 448 210."),
        (A, "Thanks, you're back in."),
    ), (("sensitive_auth_requested", 2),)),
    Dialogue("en_warns_never_share", "en", (
        EN_OPEN,
        (C, "Someone called me asking for my PIN."),
        (A, "We will never ask you to tell us your PIN or your password. That call was a scam, so I've blocked the card."),
        (C, "Thank you, Priya."),
    ), ()),
    Dialogue("en_fund_guarantee_sale", "en", (
        (A, "Hi, this is Marcus from Harbor Trust. This call is being recorded. I'm calling about our Global Equity Fund."),
        (C, "What sort of returns?"),
        (A, "We guarantee you a 6% return every year, there's absolutely no risk."),
        (C, "And if markets crash?"),
        (A, "Honestly it works just like a high-interest savings account, your capital is completely safe."),
        (C, "Okay then, put twenty thousand in."),
        (A, "Done, I've placed the order and the paperwork will follow by email."),
    ), (("prohibited_promise", 2), ("prohibited_promise", 4), ("product_misrepresentation", 4),
        ("risk_disclosure_missing", 6))),
    Dialogue("en_fund_compliant", "en", (
        (A, "Hi, this is Marcus from Harbor Trust. This call is being recorded."),
        (C, "Hi Marcus."),
        (A, "The Global Equity Fund is not a deposit and is not FDIC insured. Its value can fall and you could lose money. Past performance is no guarantee of future returns."),
        (C, "Understood."),
        (A, "Do you confirm you've read the fact sheet and understand these risks?"),
        (C, "Yes, I confirm."),
        (A, "Thank you. I've placed the order for you."),
    ), ()),
    Dialogue("en_loan_terms_late", "en", (
        (A, "Hello, it's Dana at Westfield Bank, on a recorded line. You asked about a car loan."),
        (C, "Yes, ten thousand over three years."),
        (A, "Great, I've processed the loan and the money will be in your account tomorrow."),
        (A, "I also need to tell you the APR is 7.9% and the total amount repayable is $11,240."),
        (C, "Okay."),
    ), (("risk_disclosure_out_of_order", 3),)),
    Dialogue("en_weak_confirmation", "en", (
        (A, "Hello, it's Dana at Westfield Bank, on a recorded line."),
        (A, "The APR is 12.9% and the total amount repayable is $6,400. Do you understand and agree to these terms?"),
        (C, "Mm-hmm."),
        (A, "Perfect, I'll mark that as agreed and send the contract."),
        (C, "Okay."),
    ), (("customer_confirmation_missing", 2),)),
    Dialogue("en_insurance_no_cooling_off", "en", (
        (A, "Hello, I'm Kate from Westfield Insurance Services, calling on a recorded line about travel insurance."),
        (C, "How much?"),
        (A, "It's $9 a month. It does not cover pre-existing conditions and there's a $100 excess per claim."),
        (C, "Fine, go ahead."),
        (A, "Your cover starts today, the premium will be taken monthly."),
    ), (("cooling_off_notice_missing", 4),)),
    Dialogue("en_mismatch", "en", (
        (A, "Hi, this is Marcus from Harbor Trust, this call is recorded."),
        (A, "Your risk profile came out as cautious, and this is a high-risk emerging markets fund, risk rating 6 out of 7."),
        (C, "Is that okay for me?"),
        (A, "It'll be fine. Not a deposit, and you could lose money. Shall I go ahead?"),
        (C, "Yes, I agree."),
        (A, "I've placed the order."),
    ), (("risk_assessment_mismatch", 1),)),
    # --- Mandarin ---
    Dialogue("zh_compliant_insurance", "zh", (
        (A, "您好，我是民生银行客户经理赵磊，员工编号3391。本次投保过程将进行同步录音录像，您同意吗？"),
        (C, "同意。"),
        (A, "这是泰康人寿承保的两全保险，不是银行存款。分红具有不确定性，犹豫期后退保会有现金价值损失。"),
        (A, "您有十五天犹豫期。请问您是否已经了解保险责任和责任免除条款？"),
        (C, "是的，都清楚了。"),
        (A, "好的，请您在投保单上签名。"),
    ), ()),
    Dialogue("zh_promise_variants", "zh", (
        (A, "您好，我是民生银行理财经理赵磊，工号3391，本次销售全程录音录像。"),
        (C, "好的。"),
        (A, "这款产品本金是有保障的，到期肯定能拿到百分之四点五，银行兜底。"),
        (C, "真的不会亏吗？"),
        (A, "放心，不会有任何损失，就跟定期存款差不多。"),
        (A, "理财非存款，产品有风险，投资须谨慎。请问您是否已经阅读并理解？"),
        (C, "是的，理解。"),
        (A, "请在这里签字。"),
    ), (("prohibited_promise", 2), ("prohibited_promise", 4), ("product_misrepresentation", 4))),
    Dialogue("zh_sign_first", "zh", (
        (A, "您好，我是民生银行理财经理赵磊，工号3391，本次销售全程录音录像，您同意吗？"),
        (C, "同意。"),
        (A, "您先在确认书上签一下，签完我再给您讲风险。"),
        (C, "签完了。"),
        (A, "理财非存款，产品有风险，投资须谨慎，您可能损失部分本金。"),
    ), (("risk_disclosure_out_of_order", 4),)),
    Dialogue("zh_no_identity_no_notice_mismatch", "zh", (
        (A, "王女士您好，今天给您介绍一款基金。"),
        (C, "你说吧。"),
        (A, "您是稳健型投资者，这款基金是R4级，中高风险，没什么问题。"),
        (C, "那行吧。"),
        (A, "理财非存款，产品有风险，投资须谨慎。请问您清楚了吗？"),
        (C, "还行吧。"),
        (A, "好的，那就先给您办理了，请签字。"),
    ), (("agent_identity_missing", 0), ("consent_notice_missing", 0), ("risk_assessment_mismatch", 2),
        ("customer_confirmation_missing", 5))),
    Dialogue("zh_suitable_no_sale", "zh", (
        (A, "您好，我是民生银行理财经理赵磊，工号3391，本次过程全程录音录像。"),
        (C, "好的。"),
        (A, "您的风险测评结果是进取型，这款产品风险等级三级，和您的承受能力匹配。"),
        (C, "我再考虑一下，先不买了。"),
        (A, "好的，没问题，感谢您的配合。"),
    ), ()),
    # --- second batch: more wording, hard negatives ---
    Dialogue("en_notice_variant_and_here_name", "en", (
        (A, "Hi, Ben here from Harbor Trust. Just to let you know, we record our calls for training."),
        (C, "Hi Ben. Don't worry, I only need my balance."),
        (A, "Sure, can I take your date of birth? Thanks. Your balance is $1,240. Don't worry, there's no risk to your money."),
        (C, "Thanks, bye."),
    ), ()),
    Dialogue("en_payment_cvv_asked_and_answered", "en", (
        EN_OPEN,
        (C, "I'd like to pay my credit card bill with my other card."),
        (A, "Sure. What's the long number on the card?"),
        (C, "4916 4833 7887 6232."),
        (A, "And can you give me the three-digit security code on the back?"),
        (C, "It's 512."),
        (A, "Thanks, the payment has gone through."),
    ), (("pci_card_number_spoken", 3), ("sensitive_auth_requested", 4), ("pci_cvv_spoken", 5))),
    Dialogue("en_loan_no_apr", "en", (
        (A, "Hello, this is Grace from Westfield Bank, on a recorded line. You're pre-approved for a personal loan of $5,000."),
        (C, "Oh nice, how much per month?"),
        (A, "Only about $160 a month. Shall I set it up?"),
        (C, "Yes, go ahead."),
        (A, "Great, I've submitted your application and the money will be in your account tomorrow."),
    ), (("risk_disclosure_missing", 4),)),
    Dialogue("en_loan_compliant_sure", "en", (
        (A, "Hello, this is Grace from Westfield Bank, on a recorded line."),
        (A, "The representative APR is 19.9%, so you'd repay $5,950 in total over three years. Do you want to proceed?"),
        (C, "Sure."),
        (A, "Great, I've submitted your application."),
    ), ()),
    Dialogue("en_insurance_compliant", "en", (
        (A, "Good afternoon, my name is Leo, calling from Westfield Insurance. This call is recorded."),
        (A, "The policy doesn't cover pre-existing conditions, there's a $50 excess, and you have a 30-day cooling-off period."),
        (C, "Okay, that sounds fine."),
        (A, "Can you confirm you understand these terms?"),
        (C, "Yes, I understand."),
        (A, "Thank you, your cover starts today."),
    ), ()),
    Dialogue("zh_compliant_variant_wording", "zh", (
        (A, "您好，我是建设银行的理财经理刘洋，这是我的工号三三一零。为了保障您的权益，接下来的过程会同步录音录像。"),
        (C, "好的，没问题。"),
        (A, "您的风险承受能力评估为平衡型，本产品为R3级，符合您的风险承受能力。"),
        (A, "需要提示您，理财非存款、产品有风险、投资须谨慎，本产品不保本，不保证收益。如销售人员的口头承诺与书面材料不一致，以书面材料为准。"),
        (A, "请问您是否清楚产品的风险？"),
        (C, "清楚了。"),
        (A, "请您抄录风险提示并在确认书上签名。"),
        (C, "本人已阅读风险揭示，愿意承担投资风险。"),
    ), ()),
    Dialogue("zh_misrep_deposit_forms", "zh", (
        (A, "您好，我是建设银行理财经理刘洋，工号三三一零，本次全程录音录像。"),
        (C, "好。"),
        (A, "这款年金险其实就相当于存定期，而且利息更高，稳稳当当的。"),
        (C, "那我买五万。"),
        (A, "本产品是保险产品，不是存款，退保会有损失，您有十五天犹豫期。请您在投保单上签字。"),
    ), (("product_misrepresentation", 2),)),
    Dialogue("zh_confirmation_backchannel_continue", "zh", (
        (A, "您好，我是建设银行理财经理刘洋，工号三三一零，本次全程录音录像。"),
        (C, "好的。"),
        (A, "理财非存款、产品有风险、投资须谨慎，您可能损失部分本金。您都听明白了吗？"),
        (C, "嗯嗯。"),
        (A, "好，那我们继续，请在这里签字。"),
    ), (("customer_confirmation_missing", 3),)),
    Dialogue("zh_staff_number_only_and_level_codes", "zh", (
        (A, "您好，工号1234为您服务，本次录音录像。"),
        (C, "嗯。"),
        (A, "您的风险承受能力是C2，这款产品是R3级，问题不大。"),
        (C, "那就买吧。"),
        (A, "理财非存款、产品有风险、投资须谨慎，收益率稳定，绝对不会亏。请在这里签字。"),
    ), (("agent_identity_missing", 0), ("risk_assessment_mismatch", 2), ("prohibited_promise", 4))),
    # --- ASR damage seen on the dev audio: a garbled "uh-huh", an agent notice cut off by the recogniser ---
    Dialogue("en_garbled_reply_assumed_yes", "en", (
        (A, "Hi, it's Jessica from Westfield Bank, this call is recorded."),
        (A, "Your payment goes up by $90 a month. I just need you to agree and I'll move the money today."),
        (C, "I'll."),
        (A, "Great, so I'll take that as a yes. The APR stays at 8.9%."),
    ), (("customer_confirmation_missing", 2),)),
    Dialogue("zh_notice_lost_by_asr_consent_heard", "zh", (
        (A, "你好,我是民生银行理财经理赵磊,工号三二七,"),
        (C, "可以同意啊"),
        (A, "理财非存款、产品有风险、投资须谨慎。请问您是否已经阅读并理解？"),
        (C, "是的，已阅读。"),
        (A, "请您在这里签字。"),
    ), ()),
    # Wording found on the second dev set (issue 10), rewritten here with other products and phrasing.
    Dialogue("zh_negated_promise_verbs_are_disclosures", "zh", (
        ZH_OPEN,
        (C, "同意。这个收益能保证吗？"),
        (A, "这款产品我们不承诺保本，没有谁能保证净值只涨不跌，过往业绩也不代表未来。"),
        (C, "那犹豫期呢？"),
        (A, "购买后有二十四小时的冷静期，您在冷静期内撤单，不会有损失。"),
    ), ()),
    Dialogue("zh_promise_by_rhetoric_and_certainty", "zh", (
        ZH_OPEN,
        (C, "同意。会不会亏啊？"),
        (A, "您放心，买我们银行自己的产品，哪有亏本的道理？"),
        (C, "收益大概多少？"),
        (A, "去年是百分之三点八，今年肯定不会比这个低。"),
    ), (("prohibited_promise", 2), ("prohibited_promise", 4))),
    Dialogue("zh_code_from_text_message", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "刚才给您发了条短信，里面那串数字您报给我一下。"),
        (C, "好的。"),
    ), (("sensitive_auth_requested", 2),)),
    Dialogue("en_code_texted_without_the_word", "en", (
        EN_OPEN,
        (C, "Hi Priya, I'm trying to add my new phone to the app."),
        (A, "No problem. I've texted you a six-digit number just now. Could you read it back to me?"),
        (C, "Sure, it's 4 4 1 0 9 2."),
    ), (("sensitive_auth_requested", 2),)),
    Dialogue("en_card_number_for_payment_is_not_a_secret_request", "en", (
        EN_OPEN,
        (C, "I'd like to pay the arrears on my loan by card."),
        (A, "Of course. What's the long number on the card, and the expiry date?"),
        (C, "It's 4111 1111 1111 1111, expiring March twenty-nine, and on the back it's 737."),
        (A, "Thank you, that's gone through."),
    ), (("pci_card_number_spoken", 3), ("pci_cvv_spoken", 3))),
    Dialogue("en_no_loss_in_other_words", "en", (
        EN_OPEN,
        (C, "Hi Priya, I got your letter about the tracker fund."),
        (A, "Yes. Honestly, with an index fund over ten years there's no way you end up with less than you put in."),
        (C, "Really?"),
        (A, "Not one of the people I've put into it has ever lost money."),
    ), (("prohibited_promise", 2), ("prohibited_promise", 4))),
    # The claim comes before the agent says what is sold: held, and reported once the product is named.
    Dialogue("en_savings_claim_before_the_product_is_named", "en", (
        EN_OPEN,
        (C, "I saw the leaflet about Steady Growth."),
        (A, "Honestly, it's basically a souped-up savings account, nothing more."),
        (C, "What's in it?"),
        (A, "It's a multi-asset fund, so a mix of shares and bonds."),
    ), (("product_misrepresentation", 2),)),
    # What the call sells is what the agent presents; a deposit said to be a deposit is no misrepresentation.
    Dialogue("en_deposit_said_to_be_a_deposit", "en", (
        EN_OPEN,
        (C, "My brother lost a fortune in the stock market, so I want something boring."),
        (A, "Then a two-year term deposit fits. It's a deposit, not an investment, and it's covered by the deposit guarantee scheme."),
        (C, "Good. And the rate?"),
        (A, "3.9% a year, fixed for the two years."),
    ), ()),
    # "Yes, let's go ahead" decides the sale: a disclosure after it is late, even before the agent books it.
    Dialogue("en_disclosure_after_the_customer_said_yes", "en", (
        EN_OPEN,
        (C, "I'd like to move my ISA into the Global Tracker fund."),
        (A, "Sure, it's an investment fund tracking world shares. Shall we set it up?"),
        (C, "Yes, let's go ahead with the full twelve thousand."),
        (A, "Before I do, I have to tell you the value can fall and you may get back less than you invest."),
        (C, "Fine."),
        (A, "I've placed the switch, it'll complete in five days."),
    ), (("risk_disclosure_out_of_order", 4),)),
    # Asking again in the same turn keeps the question open; the clear answer that follows closes it.
    Dialogue("zh_asked_again_then_clear_yes", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "理财非存款、产品有风险、投资须谨慎。这款产品不保本，净值可能下跌。"),
        (C, "好。"),
        (A, "请问您是否已经阅读并理解风险揭示书？"),
        (C, "嗯。"),
        (A, "这里需要您明确回答，您是否已经阅读并理解？不清楚的地方我再讲一遍。"),
        (C, "是的，我已经阅读并理解了。"),
        (A, "好的，请您在这里签字。"),
    ), ()),
    # An offer is not a sale: "Shall I set it up?" answered with "not today" concludes nothing.
    Dialogue("en_offer_declined_is_no_sale", "en", (
        EN_OPEN,
        (C, "I'm thinking about the Balanced Growth fund."),
        (A, "It's a popular fund. Shall I set it up for you today?"),
        (C, "Not today, I want to talk to my wife first."),
        (A, "Of course. I'll email you the factsheet."),
    ), ()),
    # A guaranteed investment certificate is a deposit: its guarantee is true and it needs no risk disclosure.
    Dialogue("en_gic_is_a_deposit", "en", (
        EN_OPEN,
        (C, "I want something safe for ten thousand dollars, not a mutual fund."),
        (A, "A two-year GIC pays 3.85%, and both the principal and the rate are guaranteed and CDIC insured."),
        (C, "Great, let's do the two-year."),
        (A, "Done, the GIC is open and you'll see it in online banking today."),
    ), ()),
    Dialogue("zh_deposit_certificate_is_no_product_sale", "zh", (
        ZH_OPEN,
        (C, "同意。我只想存个定期。"),
        (A, "那给您办三年期大额存单，它就是存款，年利率百分之二点一五，到期保本保息。"),
        (C, "好，就存这个。"),
        (A, "好的，请您在这张存款凭条上签字。"),
    ), ()),
    # 眼神不好 is no 好: an excuse and "您说了算" is a hedge, and signing after it is proceeding without a yes.
    Dialogue("zh_excuse_and_deferring_is_no_confirmation", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "理财非存款、产品有风险、投资须谨慎。本产品不保本，可能损失本金。"),
        (A, "请问您是否已经阅读并理解产品说明书？"),
        (C, "我眼神不好，字太小了。您说了算。"),
        (A, "好的，那您在这儿签个名就行。"),
    ), (("customer_confirmation_missing", 4),)),
    # Radio-style digits (幺 1, 两 2, 拐 7, 洞 0) are still a card number; an id number read for an id is not.
    Dialogue("zh_radio_digits_card_and_an_id_number", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "麻烦报一下您的身份证号。"),
        (C, "三四零一零四，一九七八零五二三，零零幺五。"),
        (A, "好的。保费用哪张卡扣？把卡号报一下。"),
        (C, "四幺拐幺，幺幺幺幺，幺幺幺幺，幺幺幺幺。"),
    ), (("pci_card_number_spoken", 5),)),
    # A tag question ("You understand that bit, yeah?") asks for confirmation as much as "do you understand".
    Dialogue("en_tag_question_then_if_you_say_so", "en", (
        EN_OPEN,
        (C, "I'm ready to sign for the car finance."),
        (A, "It's a loan of twelve thousand at 9.9% APR, total repayable fourteen thousand two hundred. You understand that bit, yeah?"),
        (C, "Uh... if you say so."),
        (A, "Great, I've sent the agreement for e-signature."),
    ), (("customer_confirmation_missing", 3),)),
    # A second, different confirmation question after a weak answer to the first: the first stays unconfirmed.
    Dialogue("zh_weak_answer_then_a_different_question", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "理财非存款、产品有风险、投资须谨慎。这只基金不保本，可能亏损本金。"),
        (A, "第一项，您是否已经阅读并理解基金合同和风险揭示书？"),
        (C, "都听您的。"),
        (A, "好的。第二项，您是否自愿申购这只基金五万元？"),
        (C, "是的，我自愿申购。"),
        (A, "好的，请您在申请书上签字。"),
    ), (("customer_confirmation_missing", 4),)),
    # 同意 said clearly is an answer, even when the rest of the reply sounds like a hedge (你录吧 ~ 你弄吧).
    Dialogue("zh_clear_consent_with_a_hedge_like_tail", "zh", (
        ZH_OPEN,
        (C, "同意，你录吧。"),
        (A, "理财非存款、产品有风险、投资须谨慎。本产品不保本，净值可能下跌。您是否已经阅读并理解？"),
        (C, "是的，我已经阅读并理解。"),
        (A, "好的，请您在这里签字。"),
    ), ()),
    # An identity with the bank and the 工号 but no name of the agent.
    Dialogue("zh_identity_without_a_name", "zh", (
        (A, "您好，我是嘉禾银行理财经理，工号四四一二，今天的过程全程录音录像，您同意吗？"),
        (C, "同意。"),
        (A, "理财非存款、产品有风险、投资须谨慎。本产品不保本，净值可能下跌。您是否已经阅读并理解？"),
        (C, "是的，我已经阅读并理解。"),
        (A, "好的，请您在这里签字。"),
    ), (("agent_identity_missing", 0),)),
    # A guaranteed minimum written in digits (as captions write it) is the promise the pack writes as said.
    Dialogue("zh_minimum_return_in_digits", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "这款理财每年保底3.5%，您放心。理财非存款、产品有风险、投资须谨慎。您是否已经阅读并理解？"),
        (C, "是的，我理解。"),
        (A, "好的，请您在这里签字。"),
    ), (("prohibited_promise", 2),)),
    # An offer to cover any shortfall is a guarantee, whatever the words.
    Dialogue("en_make_good_offer", "en", (
        EN_OPEN,
        (C, "I'm nervous about putting my savings into the Equity Income fund."),
        (A, "I get it. The fund is a good one: if it's ever worth less than you paid in, call me and we'll cover the difference."),
        (C, "Okay then."),
    ), (("prohibited_promise", 2),)),
    # A sale and a late disclosure recognised as one segment keep their order.
    Dialogue("zh_sale_then_disclosure_in_one_segment", "zh", (
        ZH_OPEN,
        (C, "同意。就买这个，三十万，你直接下单吧。"),
        (A, "好，已经给您下单了，三十万认购成功，那我再补充说明一下，理财不是存款，这个产品有风险，净值可能下跌，投资要谨慎。"),
        (C, "知道了。"),
    ), (("risk_disclosure_out_of_order", 2),)),
    # 不承诺保本 as ASR hears it (不成落保本) is still a denial, not a promise.
    Dialogue("zh_denial_heard_as_homophones", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "信托计划不是存款，不成落保本和最低收益，可能因为融资方违约损失本金，请您审慎决策。您是否已经阅读并理解？"),
        (C, "是的，我已经阅读并理解。"),
        (A, "好的，请您在认购书上签字。"),
    ), ()),
    # A question back answers nothing: signing after it is proceeding without a yes.
    Dialogue("zh_question_back_then_signing", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "这款理财不是存款，净值会波动，可能亏损本金。请问您是否已经阅读并理解风险揭示书？"),
        (C, "那您说呢？我又看不懂这些。"),
        (A, "好的，那请您在这里签字。"),
    ), (("customer_confirmation_missing", 3),)),
    Dialogue("en_question_back_then_order_placed", "en", (
        (A, "Hi, it's Marcus at Westfield Bank, this call is recorded."),
        (A, "Before we place the trade: the fund is not a deposit and you could lose money. Do you understand that?"),
        (C, "Why do you need me to say it? Isn't that obvious?"),
        (A, "Okay. I'm placing the order now, you'll get the confirmation by email."),
    ), (("customer_confirmation_missing", 2),)),
    # ... but a question back that the agent answers and asks again, then a clear yes, is a confirmation.
    Dialogue("zh_question_back_answered_then_yes", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "这款理财不是存款，净值会波动，可能亏损本金。请问您是否已经阅读并理解风险揭示书？"),
        (C, "亏损本金是什么意思？"),
        (A, "就是到期拿回来的钱可能比您投进去的少。您现在是否理解了？"),
        (C, "明白了，我理解。"),
        (A, "好的，那请您在这里签字。"),
    ), ()),
    Dialogue("en_question_back_answered_then_clear_yes", "en", (
        (A, "Hi, it's Marcus at Westfield Bank, this call is recorded."),
        (A, "Before we place the trade: the fund is not a deposit and you could lose money. Do you understand that?"),
        (C, "What happens if I need the money back early?"),
        (A, "You can sell at any time, at that day's price, which may be lower than what you paid."),
        (C, "Right. Yes, I understand that and I agree."),
        (A, "Thank you. I'm placing the order now, you'll get the confirmation by email."),
    ), ()),
    # Consent recorded from a hedge although no confirmation question was asked.
    Dialogue("en_put_down_as_yes_after_a_hedge", "en", (
        (A, "Hi, it's Marcus at Westfield Bank, this call is recorded."),
        (A, "The loan comes with payment protection insurance at nine dollars a month, it's not required and you "
            "can cancel within thirty days. The terms are in the pack."),
        (C, "I guess, if most people take it."),
        (A, "Great, I'll put you down as a yes for both."),
    ), (("customer_confirmation_missing", 2),)),
    # Coaching the answer keeps the question open; the coached, tentative "是吧" is no confirmation.
    Dialogue("zh_coached_answer", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "这款理财不是存款，净值会波动，可能亏损本金。请问您是否已经阅读并理解风险揭示书？"),
        (C, "啊？这个我该怎么说？"),
        (A, "您就说'是'就行，大家都这么说。"),
        (C, "哦，那……是吧。"),
        (A, "好的，请您在认购书上签字。"),
    ), (("customer_confirmation_missing", 5),)),
    # A card number read in four groups around asides, then the code asked for by where it is printed; a code
    # read off the back and a "Social Security number" that is no card code.
    Dialogue("en_pan_in_groups_and_code_by_place", "en", (
        EN_OPEN,
        (A, "I can take the payment now. Which card would you like to use?"),
        (C, "The Visa. It's 4539, sorry, one second, 1488, right, 0343, and then 6467."),
        (A, "Thanks. And I'll need the three digits from the back of that card as well."),
        (C, "Hang on. It's 552."),
        (A, "Lovely. Can I also confirm the last four digits of your Social Security number?"),
        (C, "The last four are 7719."),
    ), (("pci_card_number_spoken", 2), ("sensitive_auth_requested", 3), ("pci_cvv_spoken", 4))),
    Dialogue("en_round_the_clock_is_no_code", "en", (
        EN_OPEN,
        (C, "What if my card gets blocked abroad?"),
        (A, "Ring the number on the back of the card, it's staffed twenty-four seven, and they'll lift the block."),
    ), ()),
    # 卡 alone is a card (这张卡), and 一下 inside an aside is a word, not a digit group.
    Dialogue("zh_card_groups_around_an_aside", "zh", (
        (A, "您好，我是嘉禾银行信用卡中心客服郑宁，工号四四一二，本次通话全程录音。请问有什么可以帮您？"),
        (C, "我想查一下这张卡的账单。"),
        (A, "好的，我这边帮您核对一下这张卡：四五三九，幺四八八，稍等一下我再看一眼，零三四三，六四六七，对吗？"),
        (C, "对。"),
    ), (("pci_card_number_spoken", 2),)),
    # A second, different confirmation question right after a weak answer: the first was left unconfirmed, even
    # though both mention 风险 (the document's name and the product's).
    Dialogue("zh_next_question_after_a_hedge", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "这款理财不是存款，不保本，可能损失本金，理财有风险，投资须谨慎。"),
        (A, "请问您是否已经阅读并理解产品说明书和风险揭示书？"),
        (C, "我年纪大了看不太清……你说了算吧。"),
        (A, "好的。请问您是否知道本产品可能亏损本金，并愿意自行承担投资风险？"),
        (C, "是的，我知道，我愿意承担。"),
        (A, "好，请您在认购书上签字。"),
    ), (("customer_confirmation_missing", 4),)),
    # An insurance sale concluded by "activated from today" with no cancellation period and no exclusions.
    Dialogue("en_cover_activated_from_today", "en", (
        EN_OPEN,
        (A, "HealthGuard is critical illness cover: it pays a lump sum on a heart attack or stroke diagnosis, and the premium is forty pounds a month."),
        (C, "Fine, let's do it."),
        (A, "Perfect. HealthGuard is activated from today and the first debit comes out on the fifth."),
    ), (("risk_disclosure_missing", 3), ("cooling_off_notice_missing", 3))),
    # Coins that "aren't a deposit" and "could fetch less" disclose; the customer's go-ahead then concludes nothing
    # that is missing.
    Dialogue("en_coins_disclosed_in_plain_words", "en", (
        EN_OPEN,
        (A, "Two gold sovereigns are 1,150 pounds. Bear in mind coins aren't a deposit, the price moves daily, and "
            "if you sell them back you could fetch less than you paid."),
        (C, "Understood. Let's go ahead."),
        (A, "Lovely, I've placed the order and they'll be delivered insured on Friday."),
    ), ()),
    # A rural credit union's branch (农信 …分社) names the institution.
    Dialogue("zh_rural_credit_union_identity", "zh", (
        (A, "您好，我是青禾农信东关分社的客户经理冯悦，工号二九一四，本次通话全程录音。"),
        (C, "你好。"),
        (A, "您上次问的借记卡换卡已经办好了，带上身份证来网点领就行。"),
    ), ()),
    # An opening as ASR heard it: 客服何丽 as 克服合力, 工号 as 高号. The sounds still name the agent.
    Dialogue("zh_asr_garbled_identity", "zh", (
        (A, "您好, 江源农信信用卡中心,我是克服合力,高号3776,本次通话会全程录音。请问有什么需要?"),
        (C, "我想问一下账单。"),
        (A, "好的，请您稍等，我帮您查一下本期账单。"),
    ), ()),
    # A future value stated as certain, and a floor said as certain.
    Dialogue("en_value_stated_as_certain", "en", (
        EN_OPEN,
        (A, "The Evergreen equity fund is what I'd pick for you."),
        (C, "How much could it make?"),
        (A, "Put in twenty thousand and by the time you retire it'll be forty, simple as that."),
    ), (("prohibited_promise", 3),)),
    Dialogue("zh_floor_stated_as_certain", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "这只混合基金去年涨得不错，今年少说也能有个十五，您就等着数钱吧。"),
    ), (("prohibited_promise", 2),)),
    # "不会亏的" in answer to "万一亏了呢" promises no loss; an insurer named by its kind before 的 + a title.
    Dialogue("zh_no_loss_and_insurer_by_kind", "zh", (
        (A, "您好，我是安澜健康保险的保险顾问周宁，工号五五一八，本次销售全程录音录像，您同意吗？"),
        (C, "同意。"),
        (A, "这款现金管理理财投的都是存单和国债。"),
        (C, "那万一亏了呢？"),
        (A, "放心吧，不会亏的。"),
    ), (("prohibited_promise", 4),)),
    # 哦 and an echo of the agent's words is a backchannel, not an answer.
    Dialogue("zh_backchannel_and_echo", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "这款理财不是存款，净值会波动，可能亏损本金。请问您是否已经阅读并理解风险揭示书？"),
        (C, "哦，揭示书啊。"),
        (A, "好，请您在认购书上签字。"),
    ), (("customer_confirmation_missing", 3),)),
    # Risk levels on the firm's own scale, and a profile in the customer's own words (risk_scale.py).
    Dialogue("en_scale_of_ten_mismatch", "en", (
        EN_OPEN,
        (C, "I want to move my ISA into something with more oomph."),
        (A, "Your suitability score last spring was a four out of ten, steady, and Frontier Tech is an eight out of "
            "ten, but scores go stale, so we can skip it."),
        (C, "Okay, move it all."),
    ), (("risk_assessment_mismatch", 2),)),
    Dialogue("en_scale_of_ten_match", "en", (
        EN_OPEN,
        (C, "I want to move my ISA into something with more oomph."),
        (A, "Your suitability score last spring was an eight out of ten, and Frontier Tech sits at band seven, so "
            "that lines up with what you told us."),
        (C, "Okay, move it all."),
    ), ()),
    Dialogue("en_customer_cannot_lose_then_high_risk", "en", (
        EN_OPEN,
        (C, "This is my redundancy money. I honestly can't afford to lose any of it."),
        (A, "Sure. The Emerging Markets Opportunities fund is what I'd go for; we class it as high risk, but "
            "it's been flying."),
        (C, "Fine, put it there."),
    ), (("risk_assessment_mismatch", 2),)),
    Dialogue("en_customer_cautious_agent_refuses", "en", (
        EN_OPEN,
        (C, "I'm pretty cautious, but my brother says the crypto tracker is the thing."),
        (A, "That tracker is rated seven out of seven, and I can't put that order through for a cautious "
            "investor. We could look at the cash-plus fund instead."),
        (C, "Alright, tell me about that one."),
    ), ()),
    Dialogue("en_customer_words_after_stated_profile", "en", (
        EN_OPEN,
        (A, "Your review came out as balanced, a three on our five-point scale. Does that still feel right?"),
        (C, "Yes. I'm fine with some wobbles, I'm just not a gambler."),
        (A, "Then the Mixed Assets fund, also a three, is the match."),
    ), ()),
    # An institution of several capitalised words is not a name; a colleague's name is not the agent's.
    Dialogue("en_institution_is_not_a_name", "en", (
        (A, "Morning, this is Greyfield Cooperative Savings Bank calling back. This call is recorded."),
        (C, "Oh hello. Who's this?"),
        (A, "I'm on the cards team. My colleague Priya Nandi in the disputes team will look at the charge."),
    ), (("agent_identity_missing", 0),)),
    Dialogue("en_ring_fenced_and_share_certificate", "en", (
        EN_OPEN,
        (A, "The Summit Equity Income fund is our most popular investment this year."),
        (A, "Honestly, it's just like your share certificate, only with a better rate."),
        (A, "And your capital is ring-fenced, so whatever the markets do, you'll get the whole amount back."),
    ), (("product_misrepresentation", 2), ("prohibited_promise", 3))),
    Dialogue("en_loan_paid_out_without_apr", "en", (
        EN_OPEN,
        (A, "You've been pre-approved for a personal loan of twelve thousand, just two hundred and ten a month."),
        (C, "Okay, yes, go on then."),
        (A, "Perfect. We'll send the £12,000 into your account by tonight."),
    ), (("risk_disclosure_missing", 3),)),
    Dialogue("en_refund_is_not_a_sale", "en", (
        EN_OPEN,
        (C, "You charged me twice for the overdraft fee."),
        (A, "You're right, I'll put the £35 back into your account today."),
    ), ()),
    Dialogue("zh_locked_return_and_hedge", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "这款固收理财不是存款，有风险，投资须谨慎。按现在的行情，收益基本锁死了。"),
        (A, "产品说明书您都看懂了吗？"),
        (C, "您说是就是吧。"),
        (A, "好的，请您在认购书上签字。"),
    ), (("prohibited_promise", 2), ("customer_confirmation_missing", 4))),
    Dialogue("zh_profile_grade_by_assessment", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "您的问卷结果是一级，这款混合基金风险等级是三级，不过问题不大。"),
    ), (("risk_assessment_mismatch", 2),)),
    Dialogue("zh_loan_with_daily_rate_only", "zh", (
        (A, "您好，这里是安顺消费金融，我是客服专员周敏，工号二七一五，本次通话全程录音。"),
        (C, "你好。"),
        (A, "您现在可以再借三万，日息万分之三，每个月还两千多。"),
        (C, "那就借吧。"),
        (A, "好的，借款已经提交成功了。"),
    ), (("risk_disclosure_missing", 4),)),
    Dialogue("zh_loan_with_annual_rate", "zh", (
        (A, "您好，这里是安顺消费金融，我是客服专员周敏，工号二七一五，本次通话全程录音。"),
        (C, "你好。"),
        (A, "您现在可以再借三万，年化利率百分之十点九五，十二期总利息一千八百元。"),
        (C, "那就借吧。"),
        (A, "好的，借款已经提交成功了。"),
    ), ()),
    # A confirmation asked again in other words, after a backchannel, is the same item: an explicit yes closes it.
    Dialogue("en_reask_in_other_words", "en", (
        EN_OPEN,
        (A, "The APR is 12.4% and you'd repay 6,480 in total. Are you clear on those terms and happy to sign?"),
        (C, "Mm."),
        (A, "I need to hear it from you clearly: do you understand the terms, and do you agree to sign?"),
        (C, "Yes, I understand them and I agree."),
        (A, "Thank you, I've set up the loan."),
    ), ()),
    Dialogue("zh_reask_then_hedge", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "这款基金不是存款，可能亏损本金，投资须谨慎。产品资料您是否已经阅读并理解？"),
        (C, "嗯。"),
        (A, "阿姨，麻烦您说一下，资料都看过、也理解了吗？"),
        (C, "就那样吧。"),
        (A, "好，请在认购书上签字。"),
    ), (("customer_confirmation_missing", 5),)),
    # The card's last four, said after a CVV came up, is not a CVV; a PAN read with a filler still is a PAN.
    Dialogue("en_card_ending_after_cvv_question", "en", (
        EN_OPEN,
        (C, "Do you want the code on the back as well?"),
        (A, "No, never read that out. I've found the card ending 6614, and the refund is on its way."),
    ), ()),
    Dialogue("en_pan_with_a_filler", "en", (
        EN_OPEN,
        (A, "How would you like to pay the balance today?"),
        (C, "On my debit card, it's 5105 1051, uh, 0517 2210."),
    ), (("pci_card_number_spoken", 2),)),
    # An offer to put the order through is not the sale; a promise of the money back "at the very least" is one.
    Dialogue("en_offer_then_disclosure_then_promise", "en", (
        EN_OPEN,
        (A, "The Northwind Equity fund would suit you, and I'm happy to put it through for you today."),
        (A, "First the formal part: it's an investment, not a deposit, and you could get back less than you paid in."),
        (A, "But between us, your twenty thousand comes back to you at the very least."),
        (C, "Alright, go ahead and invest it."),
    ), (("prohibited_promise", 3),)),
    Dialogue("en_deposit_product_named_as_one", "en", (
        EN_OPEN,
        (A, "Our one-year fixed rate bond is a savings account, so it's a deposit like your current one, and it is "
            "protected up to the scheme limit."),
        (C, "Good, open that one."),
    ), ()),
    Dialogue("en_profile_refusal_not_able_to_arrange", "en", (
        EN_OPEN,
        (A, "Your questionnaire came out cautious, a two out of six, and the Frontier fund is a six out of six, "
            "so I'm not able to arrange that for you."),
        (C, "Fair enough."),
    ), ()),
    Dialogue("zh_premium_taken_concludes_repayment_does_not", "zh", (
        (A, "您好，我是平川人寿的保险顾问孔然，工号三八一二，本次通话全程录音。这款终身寿险的保费每年六千元。"),
        (C, "好，那就买吧。"),
        (A, "好的，首期保费已经扣款成功了。"),
    ), (("risk_disclosure_missing", 2), ("cooling_off_notice_missing", 2))),
    Dialogue("zh_repayment_taken_is_no_sale", "zh", (
        (A, "您好，我是平川银行贷后中心的专员孔然，工号三八一二，本次通话全程录音。您的借款逾期了，今天先还第一期可以吗？"),
        (C, "行，从卡里扣吧。"),
        (A, "好的，第一期八百元已经扣款成功，协商还款方案已经生效。"),
    ), ()),
    # dev20 round: reinstated cover and a payment plan are not sales; "I can't tell you it won't lose" denies a
    # promise; a stocks-and-shares ISA likened to a cash ISA is a deposit likeness; a rhetorical yes is a yes.
    Dialogue("en_reinstated_policy_and_payment_plan", "en", (
        EN_OPEN,
        (C, "My pet insurance lapsed when the premium bounced."),
        (A, "I've taken the missed premium, and your policy is active again from today."),
        (C, "And can I pay the loan arrears monthly?"),
        (A, "Yes, I've set up a repayment plan of forty pounds a month."),
    ), ()),
    Dialogue("en_cannot_tell_you_it_wont_lose", "en", (
        EN_OPEN,
        (A, "The Harbour Equity fund is an investment. I can't tell you it won't lose money; it can fall in value."),
    ), ()),
    Dialogue("en_investment_isa_like_cash_isa", "en", (
        EN_OPEN,
        (A, "Our global equity fund ISA is basically a cash ISA that pays more."),
    ), (("product_misrepresentation", 1),)),
    Dialogue("en_we_record_all_our_calls", "en", (
        (A, "Morning, Fernbank Credit Union, Chloe speaking. Just so you know, we record all our calls."),
        (C, "Hi Chloe, I need my balance."),
    ), ()),
    Dialogue("zh_rhetorical_yes_and_small_talk", "zh", (
        (A, "您好，我是津门银行理财经理赵雪，工号六六一九，今天办理全程录音录像，您同意吗？"),
        (C, "同意，这有啥不同意的。"),
        (A, "请问您是李先生吗？"),
        (C, "是我，啥事啊？"),
        (A, "李先生，可以给您办理一下账户升级。"),
    ), ()),
    Dialogue("zh_whatever_the_price_principal_back", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "这款黄金挂钩的理财，金价不管怎么走，到期都是连本带息拿回来。"),
    ), (("prohibited_promise", 2),)),
    Dialogue("zh_customer_placed_the_order_before_disclosure", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "这只债券基金近一年年化百分之二左右。"),
        (C, "行，我在手机上点了，已经下单了，显示认购成功。"),
        (A, "好的，再跟您提示一下：基金不是存款，净值会波动，可能亏损本金。"),
    ), (("risk_disclosure_out_of_order", 4),)),
    Dialogue("zh_renewal_officer_is_no_promise", "zh", (
        (A, "您好，我是平川财产保险的续保专员何俊，工号二二零四六，本次通话全程录音。您的车险下月到期。"),
        (C, "知道了，我回头自己续。"),
    ), ()),
    # dev21 round: a payment holiday agreed and done is no sale; "while the plan is active" is a condition; an
    # add-on "that's added" concludes an insurance sale; a thirty-day window to cancel is a cooling-off notice.
    Dialogue("en_payment_holiday_done_is_no_sale", "en", (
        EN_OPEN,
        (C, "I've lost my job and I'm worried about my mortgage."),
        (A, "We can offer a three-month payment holiday on your mortgage. Interest still builds up. Do you understand, "
            "and shall I start it?"),
        (C, "Yes, I understand, please start it."),
        (A, "Done. Your payments are paused until October."),
    ), ()),
    Dialogue("en_while_the_plan_is_active", "en", (
        EN_OPEN,
        (C, "I'm overdrawn and can't clear it."),
        (A, "I can set up a repayment plan, and while the plan is active we won't charge overdraft fees."),
    ), ()),
    Dialogue("en_insurance_added_without_cooling_off", "en", (
        EN_OPEN,
        (A, "Our gadget insurance covers your phone against theft. It doesn't cover loss, and there's a $50 excess."),
        (A, "Do you understand those exclusions, and shall I add it?"),
        (C, "Yes, I understand, add it."),
        (A, "Great, that's added, and the $7 comes out monthly."),
    ), (("cooling_off_notice_missing", 4),)),
    Dialogue("en_window_to_cancel_is_a_cooling_off_notice", "en", (
        EN_OPEN,
        (A, "Our gadget insurance covers your phone against theft. It doesn't cover loss, and there's a $50 excess."),
        (A, "You'd have a fourteen-day window to cancel and get all your money back. Do you understand the exclusions?"),
        (C, "Yes, I understand, add it."),
        (A, "Great, that's added, and the $7 comes out monthly."),
    ), ()),
    Dialogue("zh_double_negative_yes", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "这款理财不是存款，可能亏损本金，投资须谨慎。请问您是否已经阅读并理解？"),
        (C, "没有不清楚的，我确认，已经阅读并理解了。"),
        (A, "好的，请您在认购书上签字。"),
    ), ()),
    Dialogue("zh_not_a_cent_less", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "这款理财您放心，到期本金一分都少不了。"),
    ), (("prohibited_promise", 2),)),
    # dev22 round: a payment split and a fee waived are servicing; an offer "I can still put it through" is not the
    # sale; a CD likeness is no longer hidden by the sentence naming a CD; 不能向您保证收益 denies the promise.
    Dialogue("en_payment_split_is_servicing", "en", (
        EN_OPEN,
        (C, "I can't pay the whole loan instalment this week."),
        (A, "On the loan, we can split the payment: $150 today and the rest on the thirtieth, and I'm taking off "
            "the $25 late fee."),
        (C, "Yes, that works."),
        (A, "It's set up. Your arrangement reference is 55120."),
    ), ()),
    Dialogue("en_offer_despite_profile_then_disclosure", "en", (
        EN_OPEN,
        (A, "Your profile is cautious, a two out of seven, and the Apex fund is a six, but I can still put it through."),
        (C, "Is that a problem?"),
        (A, "The fund isn't a deposit; it's an investment and you could get back less than you put in."),
        (C, "Alright, go ahead and buy it."),
    ), (("risk_assessment_mismatch", 1),)),
    Dialogue("en_really_just_a_cd", "en", (
        EN_OPEN,
        (A, "Let me tell you about our Market Income fund, an investment in corporate bonds."),
        (A, "Honestly, it's really just a certificate of deposit with a better rate attached."),
    ), (("product_misrepresentation", 2),)),
    Dialogue("en_years_and_amounts_are_no_card", "en", (
        EN_OPEN,
        (A, "I've refunded the card's two $5 fees from 2020 and 2021, so the balance is now $1,246.47."),
    ), ()),
    Dialogue("zh_cannot_promise_a_return", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "这款产品不保本，我也不能向您保证收益。理财非存款、产品有风险、投资须谨慎。"),
    ), ()),
    # dev23 round: a scale said "of one to seven"; a deferral agreed is servicing; "we record our member calls";
    # "Calls here" is no name; "you'll be well ahead"; 不能讲稳赚不赔; 赔不着.
    Dialogue("en_scale_of_one_to_seven_matches", "en", (
        EN_OPEN,
        (A, "Your attitude-to-risk questionnaire came out as balanced, and the Meridian portfolio is rated four on our "
            "scale of one to seven, which suits a balanced profile."),
        (A, "It's an investment, not a deposit, and you could get back less than you put in. Do you understand?"),
        (C, "Yes, I understand. Put $10,000 into it."),
    ), ()),
    Dialogue("en_deferral_done_is_no_sale", "en", (
        EN_OPEN,
        (A, "On your mortgage we can defer up to three payments; it shows as an agreed arrangement on your file."),
        (C, "Yes, please set that up."),
        (A, "Done. Nothing will be taken in July or August."),
    ), ()),
    Dialogue("en_member_calls_recorded_and_desk_greeting", "en", (
        (A, "Hello, Oakfield Bank card services. Calls here are monitored. This is Dana, how can I help?"),
        (C, "Hi, my card is blocked."),
        (A, "Thank you for calling Birchwood Credit Union, this is Dana. We record our member calls."),
    ), ()),
    Dialogue("en_desk_greeting_without_a_name", "en", (
        (A, "Hello, Oakfield Bank card services. Calls here are monitored and recorded. How can I help?"),
        (C, "Hi, my card is blocked."),
    ), (("agent_identity_missing", 0),)),
    Dialogue("en_well_ahead_in_five_years", "en", (
        EN_OPEN,
        (A, "The Global Tech fund is an equity fund. Give it five years and you'll be well ahead of where you are."),
    ), (("prohibited_promise", 1),)),
    Dialogue("zh_cannot_say_sure_profit", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "这款理财不保本，我不能讲稳赚不赔，理财非存款、产品有风险、投资须谨慎。"),
    ), ()),
    Dialogue("zh_never_lose_on_you", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "这款基金拿满两年，怎么着也比定期强，赔不着您。"),
    ), (("prohibited_promise", 2),)),
    # dev24 round: "guaranteed at least 5%"; money moved into a note concludes the sale; "worst case ... back in
    # profit"; a card replaced is servicing; 可以给您下单 is an offer; 可能比投进去的少 is a disclosure.
    Dialogue("en_guaranteed_percentage_and_money_moved", "en", (
        EN_OPEN,
        (A, "Our Growth Note is linked to the index, and you're guaranteed at least 5% a year."),
        (C, "Okay, go on then."),
        (A, "I've moved the $25,000 into the Growth Note as of today."),
    ), (("prohibited_promise", 1), ("risk_disclosure_missing", 3))),
    Dialogue("en_worst_case_back_in_profit", "en", (
        EN_OPEN,
        (A, "The Pacific Equity fund dips sometimes, but it always comes back. Worst case, you sit tight a few months "
            "and you're back in profit."),
    ), (("prohibited_promise", 1),)),
    Dialogue("en_card_replaced_is_servicing", "en", (
        EN_OPEN,
        (C, "Someone called pretending to be you and asked for my PIN."),
        (A, "You did the right thing. On your loan account nothing has moved. I'd suggest we replace your card anyway. "
            "Shall I do that?"),
        (C, "Yes, please."),
        (A, "Done. The new card will arrive within seven days."),
    ), ()),
    Dialogue("zh_offer_to_order_then_disclosure", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "您的测评是平衡型，这只混合基金是三级，我这边可以正常给您下单。"),
        (A, "基金有风险，投资须谨慎。本基金不是存款，到期拿回来的钱有可能比投进去的少。"),
        (C, "好的，那就买五万。"),
    ), ()),
    # dev25 round: a CD's fixed rate in a sentence with decimals is still about the CD; a dispute opened is no sale;
    # "we keep a recording of our calls"; "worst case, you'd get your forty thousand back"; 保证让您赚钱; a name
    # written on the form concludes the sale; 跟存款不是一回事 / 本金也可能缩水 disclose.
    Dialogue("en_cd_rates_with_decimals_and_dispute", "en", (
        (A, "Good morning, Ridgeway Bank, Sam speaking. We keep a recording of our calls."),
        (C, "My CD matures soon, and there's a hotel charge I don't recognise."),
        (A, "Our twelve-month CD pays 4.1% and the two-year pays 3.8%, fixed for the whole term. We also have an "
            "equity fund if you want growth."),
        (A, "I've opened a dispute for the $186 hotel charge."),
    ), ()),
    Dialogue("en_worst_case_forty_thousand_back", "en", (
        EN_OPEN,
        (A, "The Atlas Equity fund can be bumpy. Worst case, you'd get your forty thousand back."),
    ), (("prohibited_promise", 1),)),
    Dialogue("zh_promise_to_make_you_money_and_late_disclosure", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "这只股票基金您拿够两年，保证让您赚钱。"),
        (A, "行，那您先在认购单右下角把名字写上。"),
        (C, "写完了。"),
        (A, "再跟您交代两句，这个基金跟存款不是一回事，行情差的时候本金也可能缩水。"),
    ), (("prohibited_promise", 2), ("risk_disclosure_out_of_order", 5))),
    # dev26 round: a card activated is servicing, "the app will ask for the code" is no request, "we would never ring
    # you and ask for" is a warning; "I'll get the policy started" concludes an insurance sale; a likeness to a
    # 大额存单 in its own clause is a misrepresentation; 赚钱是早晚的事.
    Dialogue("en_card_activated_and_app_prompt", "en", (
        EN_OPEN,
        (C, "My new credit card won't work in Google Pay."),
        (A, "I've activated it for you now. The app will ask for the security code on the back; type it in there."),
        (A, "We would never ring you and ask for a code from a text message, your PIN, or your password."),
    ), ()),
    Dialogue("en_policy_started_without_cooling_off", "en", (
        EN_OPEN,
        (A, "Our life insurance is a £12 monthly premium; it doesn't cover suicide in the first year. Understood?"),
        (C, "Yes, I understand, go ahead."),
        (A, "Great, I'll get the policy started from today."),
    ), (("cooling_off_notice_missing", 3),)),
    Dialogue("zh_like_a_large_cd_and_sure_to_earn", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "这款增额终身寿险，您就当是在我们这儿存了一张长期的大额存单。"),
        (C, "哦，那基金呢？"),
        (A, "这只基金您拿满三年，赚钱是早晚的事。"),
    ), (("product_misrepresentation", 2), ("prohibited_promise", 4))),
    # dev27 round: "What's the CVV on that card?" asks for it; 保证您一年拿到百分之三点八 promises a return.
    Dialogue("en_whats_the_cvv", "en", (
        EN_OPEN,
        (A, "Great. What's the CVV on that card, please?"),
    ), (("sensitive_auth_requested", 1),)),
    Dialogue("zh_promise_a_rate", "zh", (
        ZH_OPEN,
        (C, "同意。"),
        (A, "这款理财我们保证您一年拿到百分之三点八。"),
    ), (("prohibited_promise", 2),)),
    # dev28 round: a fixed-rate bond that is a deposit (AER, FSCS) promises nothing by its fixed rate or its
    # lock-in; "nobody has ever come out of this portfolio with less" promises; CVV read digit by digit with "oh"
    Dialogue("en_fixed_rate_deposit_bond", "en", (
        (A, "Good afternoon, Ashcombe Bank savings team, you're speaking with Fiona. Just so you know, this call is recorded for training and regulatory purposes. How can I help?"),
        (C, "Hello, Fiona. I've got a bit of money from my mum's estate, about thirty thousand, and I'd like to put it somewhere safe for a couple of years. Somebody mentioned your fixed-rate bond."),
        (A, "I'm sorry about your mum. Yes, let me tell you about it. First, can I confirm your full name and date of birth?"),
        (C, "Ian Lockhart, fifth of October, nineteen fifty-eight."),
        (A, "Thank you, Mr. Lockhart. The two-year fixed-rate bond pays 4.1% AER, and the rate stays fixed for the full two years. It's a savings account, a deposit, so it's protected by the FSCS up to eighty-five thousand pounds per person."),
        (C, "So it's not one of those investment things that goes up and down?"),
        (A, "No, this is a straightforward deposit account, so the balance doesn't move with the markets. The trade-off is that you can't withdraw anything until the two years are up, and the interest is paid once a year."),
        (C, "That's fine, I won't need it. And if I change my mind?"),
        (A, "You've got fourteen days after opening to change your mind and take the money out without any penalty. After that, it's locked in until maturity."),
        (A, "So, do you confirm you'd like to open the two-year bond with thirty thousand pounds from your current account, and that you understand you can't withdraw early?"),
        (C, "Yes, I confirm. Let's open it."),
        (A, "Lovely. That's opened, and the thirty thousand pounds has moved across. You'll get the account summary by post and in the app."),
        (C, "Thank you, that was painless."),
    ), ()),
    Dialogue("en_nobody_came_out_with_less", "en", (
        EN_OPEN,
        (C, "Could I lose money in this portfolio?"),
        (A, "Well, put it this way. In twelve years, nobody has ever come out of this portfolio with less than they put in."),
    ), (("prohibited_promise", 2),)),
    Dialogue("en_cvv_read_with_oh", "en", (
        EN_OPEN,
        (C, "Do you need anything else off the card? The three on the back are seven, oh, four, if that helps."),
    ), (("pci_cvv_spoken", 1),)),
    # 还能让您亏了本金不成 (a rhetorical no-loss), 就等着拿吧 (a return as certain); 和定期存款是两回事 denies a likeness
    Dialogue("zh_rhetorical_no_loss_and_wait_to_collect", "zh", (
        ZH_OPEN,
        (C, "同意。这是养老的钱，万一亏了怎么办？"),
        (A, "您想想，咱们这么大一家银行，还能让您亏了本金不成？"),
        (C, "那一年能拿多少？"),
        (A, "业绩比较基准是百分之三点五，到期这个数您就等着拿吧。"),
    ), (("prohibited_promise", 2), ("prohibited_promise", 4))),
    Dialogue("zh_two_different_things", "zh", (
        ZH_OPEN,
        (C, "同意。那它跟我存定期比，到底有什么区别？"),
        (A, "它和定期存款是两回事。红利分配是不确定的，有些年度可能为零。"),
    ), ()),
]


def _events(d: Dialogue) -> list[TranscriptEvent]:
    events, t = [], 0.5
    for i, (speaker, text) in enumerate(d.turns):
        dur = max(1.0, len(text) * (0.06 if d.language == "en" else 0.22))
        events.append(TranscriptEvent(d.name, "final", f"t{i}.s0", 0 if speaker == A else 1, speaker, t, t + dur,
                                      text, language=d.language))
        t += dur + 0.6
    return events


@pytest.fixture(scope="module")
def packs():
    return load_packs()


@pytest.fixture(scope="module")
def normalizer():
    return TextNormalizer()  # shared, as in the pipeline: policy phrases are compiled once


@pytest.mark.parametrize("dialogue", DIALOGUES, ids=lambda d: d.name)
def test_variant_dialogue(dialogue: Dialogue, packs, normalizer) -> None:
    from intelligence.compliance.rules import SCENARIO_RULES

    engine = ComplianceEngine(packs, session_id=dialogue.name, language=dialogue.language, normalizer=normalizer)
    findings = engine.run(_events(dialogue))
    got = set()
    for f in findings:
        rule = engine.rule(f.rule_id)
        if rule is None or rule.maps_to is None:
            continue
        turn = int(f.evidence[0].segment_id[1:].split(".")[0]) if f.evidence[0].segment_id.startswith("t") else -1
        got.add((rule.maps_to, -1 if SCENARIO_RULES[rule.maps_to] == "absent" else turn))
    want = {(r, -1 if SCENARIO_RULES[r] == "absent" else t) for r, t in dialogue.expected}
    assert got == want, f"missing {sorted(want - got)}, unexpected {sorted(got - want)}"
