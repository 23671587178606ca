"""Decisions, action items and open questions (intelligence.minutes.extract): unit cases, and precision/recall on a
small hand-labelled set of English and Mandarin meetings and calls.

The labelled set has two parts. DEV was written first and the rules were tuned on it; HELD_OUT was written after
the rules were frozen and measured once. Thresholds are a little under what was measured, so a regression fails.
Labels: D = decision, A(owner, due) = action item, Q = open question. Items with the same `key` on several
utterances are one item that may be reported at any of them (a proposal and its "Agreed.", a question and the
"I'm not sure" that leaves it open).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import pytest

from intelligence.minutes.extract import action_items, decisions, open_questions
from intelligence.minutes.types import MinutesUtterance


@dataclass(frozen=True)
class D:
    key: str | None = None


@dataclass(frozen=True)
class A:
    owner: str | None = None
    due: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class Q:
    key: str | None = None


Label = D | A | Q
Line = tuple[str, str] | tuple[str, str, Label] | tuple[str, str, Label, Label]


# ----------------------------------------------------------------------------------------------------------- DEV set

EN_LAUNCH: list[Line] = [
    ("Alice", "Okay, let's get started. Can everyone hear me?"),
    ("Bob", "Yes, loud and clear."),
    ("Alice", "First item is the launch date. Marketing wants the fourteenth but the payment integration is behind."),
    ("Raj", "It's about two weeks behind. If we decide to keep the fourteenth, we'd have to cut the refunds flow."),
    ("Mary", "I'd rather slip the date than ship without refunds."),
    ("Alice", "Okay, so we'll go with the twenty-eighth for launch.", D("launch")),
    ("Bob", "Agreed, the twenty-eighth works.", D("launch")),
    ("Alice", "Raj, can you update the release plan by Friday?", A("Raj", "by Friday")),
    ("Raj", "Sure, will do."),
    ("Mary", "I'll send the revised timeline to the sales team tomorrow.", A("Mary", "tomorrow")),
    ("Bob", "What about the pricing page? Who is writing the copy for that?", Q()),
    ("Alice", "Let's move on to the support staffing question."),
    ("Mary", "We still need to figure out how many agents we need for launch week.", Q()),
    ("Raj", "I can't commit to the weekend on-call, to be honest."),
    ("Alice", "Action item for Bob: draft the on-call rota and share it with the team by next week.",
     A("Bob", "by next week")),
    ("Bob", "Got it."),
    ("Alice", "Does that make sense to everyone?"),
    ("Mary", "Yes."),
    ("Alice", "Great, thanks all, let's wrap up."),
]

EN_BILLING: list[Line] = [
    ("agent", "Thank you for calling, how can I help you today?"),
    ("customer", "Hi, I was charged twice for my subscription this month."),
    ("agent", "I'm sorry about that. Can you confirm the last four digits of the card?"),
    ("customer", "It ends in four two one seven."),
    ("agent", "Thanks. I can see both charges here. I'll raise a refund for the duplicate charge right now.",
     A("agent")),
    ("customer", "How long does the refund take to show up?"),
    ("agent", "Usually three to five business days."),
    ("customer", "Okay. And will this happen again next month?", Q("again")),
    ("agent", "I'm not sure, I'll have to check with our billing team and call you back by Thursday.",
     Q("again"), A("agent", "by Thursday")),
    ("customer", "Please do. I'd also like an email confirming the refund."),
    ("agent", "Of course, you'll get a confirmation email within the hour.", A("agent", "within the hour")),
    ("customer", "Great, thanks."),
    ("agent", "Is there anything else I can help you with?"),
    ("customer", "No, that's all."),
]

EN_VENDOR: list[Line] = [
    ("Priya", "We have two vendors left for the data warehouse, Snowflake and BigQuery."),
    ("Tom", "Should we run a proof of concept with both?"),
    ("Priya", "No time for that, honestly. The contract has to be signed this quarter."),
    ("Tom", "Then I think BigQuery, since we're already on Google Cloud."),
    ("Priya", "Fine by me. Let's go with BigQuery.", D()),
    ("Li", "Wait, we haven't decided who pays for the migration yet.", Q("pays")),
    ("Priya", "Good point. That's still open, I'll raise it with finance.", Q("pays"), A("Priya")),
    ("Tom", "I'll set up the BigQuery sandbox this afternoon.", A("Tom", "this afternoon")),
    ("Li", "If I have time, I might look at the dbt models too."),
    ("Priya", "Li, could you check the data retention requirements before Monday?", A("Li", "before Monday")),
    ("Li", "Yeah, no problem."),
    ("Tom", "Can you share your screen for a second?"),
    ("Priya", "Sure, one moment."),
    ("Tom", "So the dashboards will break during cutover, right?"),
    ("Priya", "Only for about an hour, so nobody will notice much."),
    ("Li", "We decided last week to freeze schema changes until the migration is done, right?"),
    ("Priya", "Yes, that's still the plan."),
    ("Tom", "What's the budget for the sandbox?", Q("budget")),
    ("Priya", "No idea, honestly. We need to figure that out with finance.", Q("budget")),
]

EN_ADVISORY: list[Line] = [
    ("advisor", "Before we continue, I need to read you the risk disclosure."),
    ("advisor", "This product is not principal protected and you could lose money."),
    ("client", "Understood. What's the minimum holding period?"),
    ("advisor", "Ninety days, and there's a fee if you redeem early."),
    ("client", "Okay. I'll think about it and let you know next week.", A("client", "next week")),
    ("advisor", "Sure. I'll email you the product brochure today.", A("advisor", "today")),
    ("client", "Do I need to bring my ID to the branch?"),
    ("advisor", "Yes, please bring your ID and a bank card.", A("client")),
    ("client", "Okay, will do."),
    ("advisor", "We haven't agreed on the investment amount, so let's leave that for next time.", Q()),
    ("client", "Agreed."),
]

ZH_LAUNCH: list[Line] = [
    ("王经理", "好，我们开始吧，大家能听到吗？"),
    ("小李", "能听到。"),
    ("王经理", "第一个议题是上线时间，原定下周三，但是支付接口还没联调完。"),
    ("陈工", "支付接口大概还要一周，如果决定下周三上线，退款功能就得砍掉。"),
    ("小张", "我觉得宁可晚一点，也不要砍退款。"),
    ("王经理", "那我们决定推迟到下下周三上线。", D("launch")),
    ("小李", "同意。", D("launch")),
    ("王经理", "陈工你负责下周五之前把联调做完。", A("陈工", "下周五前")),
    ("陈工", "好的，没问题。"),
    ("小张", "我明天把新的排期发给销售团队。", A("小张", "明天")),
    ("小李", "那定价页面的文案谁来写？", Q()),
    ("王经理", "我们先说下一个议题，客服排班。"),
    ("小张", "上线那周需要多少客服，现在还没确定。", Q()),
    ("王经理", "小李，你整理一下排班表，月底前发给我。", A("小李", "月底前")),
    ("小李", "收到。"),
    ("王经理", "还有别的问题吗？"),
    ("陈工", "没有了。"),
]

ZH_BILLING: list[Line] = [
    ("客服", "您好，请问有什么可以帮您？"),
    ("客户", "我这个月的会员费被扣了两次。"),
    ("客服", "非常抱歉，麻烦您提供一下银行卡后四位。"),
    ("客户", "四二一七。"),
    ("客服", "我看到两笔扣款了，我这边马上帮您申请退款。", A("客服")),
    ("客户", "退款多久能到账？"),
    ("客服", "一般三到五个工作日。"),
    ("客户", "下个月还会重复扣吗？", Q("again")),
    ("客服", "这个我不太确定，我去跟账务部门核实一下，周四之前给您回电话。", Q("again"), A("客服", "周四前")),
    ("客户", "好的，麻烦了。"),
    ("客服", "请问还有其他可以帮您的吗？"),
    ("客户", "没有了，谢谢。"),
]

ZH_VENDOR: list[Line] = [
    ("刘总", "数据仓库现在剩两家，阿里云和华为云。"),
    ("小周", "要不要两家都做个测试？"),
    ("刘总", "来不及了，这个季度就要签合同。"),
    ("小周", "那我倾向阿里云，我们现在的系统都在阿里云上。"),
    ("刘总", "行，就用阿里云，就这么定了。", D()),
    ("老孙", "等一下，迁移费用谁来出，我们还没决定吧？", Q("fee")),
    ("刘总", "对，这个还是待定，我去跟财务沟通。", Q("fee"), A("刘总")),
    ("小周", "我今天下午把测试环境搭起来。", A("小周", "今天下午")),
    ("老孙", "如果有时间的话，我也可以看看数据模型。"),
    ("刘总", "老孙，数据保留的合规要求你周一前确认一下。", A("老孙", "周一前")),
    ("老孙", "好的。"),
    ("小周", "切换的时候报表会不会中断？"),
    ("刘总", "会中断一个小时左右，影响不大。"),
    ("小周", "测试环境的预算是多少？", Q("budget")),
    ("刘总", "还不清楚，需要再跟财务确认。", Q("budget")),
]

ZH_ADVISORY: list[Line] = [
    ("理财经理", "在继续之前，我需要向您宣读风险提示。"),
    ("理财经理", "本产品不保本，您可能会损失本金。"),
    ("客户", "明白。最短持有期是多久？"),
    ("理财经理", "九十天，提前赎回要收手续费。"),
    ("客户", "好，我考虑一下，下周给你答复。", A("客户", "下周")),
    ("理财经理", "好的，我今天把产品说明书发到您邮箱。", A("理财经理", "今天")),
    ("客户", "去网点办理需要带身份证吗？"),
    ("理财经理", "需要，请带上身份证和银行卡。", A("客户")),
    ("客户", "好的。"),
    ("理财经理", "投资金额我们还没谈好，下次再定吧。", Q()),
    ("客户", "同意。"),
]

DEV_EN = [EN_LAUNCH, EN_BILLING, EN_VENDOR, EN_ADVISORY]
DEV_ZH = [ZH_LAUNCH, ZH_BILLING, ZH_VENDOR, ZH_ADVISORY]


# ------------------------------------------------------------------------------------------------ HELD-OUT set
# Written after the rules were frozen; measured once (the numbers in the thresholds below), not tuned on.

EN_CAMPAIGN: list[Line] = [
    ("Sofia", "Morning everyone, thanks for joining. We've got three things on the agenda today."),
    ("Daniel", "Quick one before we start, is the budget review still happening on Thursday?"),
    ("Sofia", "Yes, Thursday at two."),
    ("Sofia", "So, the spring campaign. We looked at TV, podcasts and paid social last time."),
    ("Grace", "Honestly, TV is way over budget for us this year."),
    ("Ken", "I'd propose we drop TV and put that money into podcasts."),
    ("Sofia", "Sounds good to me. Okay, TV is out, we're putting the money into podcasts and paid social.", D()),
    ("Daniel", "Which podcasts, though? Has anyone looked at the audience numbers?"),
    ("Grace", "I have a spreadsheet from the agency, I'll send it around after this call.",
     A("Grace", "after this call")),
    ("Daniel", "Great. Ken, can you pull together a shortlist of five shows by Wednesday?", A("Ken", "by Wednesday")),
    ("Ken", "Yep."),
    ("Sofia", "Next, the landing page. Do we keep the current design or start fresh?", Q("landing")),
    ("Grace", "I think we should start fresh, the current one converts badly."),
    ("Daniel", "I'm not convinced, a redesign takes at least six weeks."),
    ("Sofia", "Let's not decide that today. We'll revisit the landing page once we have the conversion data.",
     Q("landing")),
    ("Grace", "Who owns the conversion data, by the way?", Q("owner")),
    ("Ken", "Good question, I think analytics does but I'm not sure.", Q("owner")),
    ("Sofia", "Okay, I'll ask around and report back next Monday.", A("Sofia", "next Monday")),
    ("Daniel", "If the numbers look bad, we might have to push the launch."),
    ("Sofia", "Agreed, but let's not panic yet."),
    ("Sofia", "Last thing: the campaign goes live on April 3rd, that's final.", D()),
    ("Ken", "Got it. I'll let the agency know today.", A("Ken", "today")),
]

EN_HELPDESK: list[Line] = [
    ("agent", "IT service desk, this is Sam speaking."),
    ("caller", "Hi Sam, my laptop won't connect to the VPN since this morning."),
    ("agent", "Okay, have you restarted it since then?"),
    ("caller", "Yes, twice."),
    ("agent", "Can you open the VPN client and read me the error code?"),
    ("caller", "It says error 809."),
    ("agent", "That's usually the firewall. I'm going to reset your VPN profile from here.", A("agent")),
    ("caller", "Okay."),
    ("agent", "Done. Could you try connecting again?"),
    ("caller", "It works now, thanks. Will this happen again after the next update?"),
    ("agent", "It shouldn't, but if it does, just call us back and quote ticket 4471."),
    ("agent", "I'll also email you a summary of the fix.", A("agent")),
    ("caller", "Perfect, thank you."),
]

EN_BUDGET: list[Line] = [
    ("Chair", "The board approved the hiring plan on Monday, so we can open the three roles.", D()),
    ("Nina", "Do we know the salary bands yet?", Q("bands")),
    ("Chair", "Not yet, HR is still working on them.", Q("bands")),
    ("Nina", "Then I'd suggest we wait for the bands before posting the jobs.", D("wait")),
    ("Chair", "Yes, let's do that.", D("wait")),
    ("Omar", "Nina, please draft the job descriptions so they're ready when HR is done.", A("Nina")),
    ("Nina", "Will do."),
    ("Omar", "And we should probably talk about the office move at some point."),
    ("Chair", "We're not moving offices this year, that was settled in March.", D()),
    ("Omar", "Okay, fair enough."),
]

ZH_CAMPAIGN: list[Line] = [
    ("赵总", "大家早，今天主要讨论三件事。"),
    ("小陈", "开始之前问一下，预算评审还是周四开吗？"),
    ("赵总", "对，周四下午两点。"),
    ("赵总", "先说春季推广，上次我们看了电视、播客和信息流广告。"),
    ("周姐", "说实话，电视广告今年预算根本不够。"),
    ("大刘", "我建议不投电视了，把钱放到播客上。"),
    ("赵总", "可以，电视就不投了，预算转到播客和信息流。", D()),
    ("小陈", "那具体投哪几个播客？有人看过收听数据吗？"),
    ("周姐", "代理商给过一个表，我会后发到群里。", A("周姐", "会后")),
    ("小陈", "好。大刘，你周三之前拉一个五档节目的候选名单。", A("大刘", "周三前")),
    ("大刘", "好的。"),
    ("赵总", "下一个是落地页，沿用现在的设计还是重新做？", Q("landing")),
    ("周姐", "我觉得应该重新做，现在的转化率太低了。"),
    ("小陈", "我不太同意，重做至少要六周。"),
    ("赵总", "这个今天先不定，等转化数据出来再讨论。", Q("landing")),
    ("周姐", "转化数据归谁管？", Q("owner")),
    ("大刘", "好问题，应该是数据组，但我不确定。", Q("owner")),
    ("赵总", "那我去问一下，下周一给大家反馈。", A("赵总", "下周一")),
    ("小陈", "如果数据不好，可能得推迟上线。"),
    ("赵总", "最后一件事，活动四月三号上线，这个不改了。", D()),
    ("大刘", "收到，我今天通知代理商。", A("大刘", "今天")),
]

ZH_HELPDESK: list[Line] = [
    ("坐席", "您好，IT服务台，我是小林。"),
    ("来电", "你好，我的电脑从今天早上开始连不上VPN。"),
    ("坐席", "重启过了吗？"),
    ("来电", "重启了两次。"),
    ("坐席", "麻烦您打开VPN客户端，把错误代码念一下。"),
    ("来电", "显示错误809。"),
    ("坐席", "一般是防火墙的问题，我这边帮您重置一下VPN配置。", A("坐席")),
    ("来电", "好。"),
    ("坐席", "好了，您再试一下连接。"),
    ("来电", "可以了，谢谢。下次系统更新后还会这样吗？"),
    ("坐席", "应该不会，如果再出现，您直接打过来报工单号4471就行。"),
    ("坐席", "我稍后把处理记录发到您邮箱。", A("坐席")),
    ("来电", "好的，谢谢。"),
]

ZH_BUDGET: list[Line] = [
    ("主持人", "董事会周一批准了招聘计划，三个岗位可以开了。", D()),
    ("小宁", "薪资范围定了吗？", Q("bands")),
    ("主持人", "还没有，人事还在做。", Q("bands")),
    ("小宁", "那我建议等薪资范围出来再发招聘信息。", D("wait")),
    ("主持人", "好，就这么办。", D("wait")),
    ("老吴", "小宁，你先把岗位说明写好，人事那边一好就能发。", A("小宁")),
    ("小宁", "没问题。"),
    ("老吴", "办公室搬迁的事，我们找时间也得聊一下。"),
    ("主持人", "今年不搬了，三月份就定了。", D()),
    ("老吴", "行，明白。"),
]

HELD_EN = [EN_CAMPAIGN, EN_HELPDESK, EN_BUDGET]
HELD_ZH = [ZH_CAMPAIGN, ZH_HELPDESK, ZH_BUDGET]


# ------------------------------------------------------------------------------------------------------- FRESH set
# Written after the fixes prompted by HELD_OUT (which is therefore no longer blind); measured once, not tuned on.

EN_SPRINT: list[Line] = [
    ("Jordan", "Alright, sprint planning. We have about forty points of capacity this time."),
    ("Mei", "Before we commit to anything, did the auth bug get fixed?"),
    ("Carlos", "Yeah, I merged the fix yesterday."),
    ("Jordan", "Good. The big question is whether we take on the search rewrite this sprint."),
    ("Aisha", "I'd hold off. We don't have designs for it yet."),
    ("Mei", "I'm with Aisha, let's push it to next sprint.", D("search")),
    ("Jordan", "Okay, search rewrite moves to next sprint.", D("search")),
    ("Carlos", "Then I can pick up the flaky test cleanup.", A("Carlos")),
    ("Jordan", "Great, take that one. Aisha, could you get the designs ready by the end of next week?",
     A("Aisha", "by the end of next week")),
    ("Aisha", "I can try, but I need input from product first."),
    ("Jordan", "Mei, can you set up a call with product for Aisha tomorrow?", A("Mei", "tomorrow")),
    ("Mei", "Sure."),
    ("Carlos", "Do we still support Internet Explorer, by the way?", Q("ie")),
    ("Jordan", "Nobody has told me otherwise, so I'm guessing yes, but let's confirm with the account team.",
     Q("ie"), A(None)),
    ("Aisha", "I won't be around on Friday, just so everyone knows."),
    ("Jordan", "Noted. I'll update the sprint board after this meeting.", A("Jordan", "after this meeting")),
    ("Mei", "Are we doing the retro on Thursday or Friday?"),
    ("Jordan", "Thursday, since Aisha is out Friday."),
]

EN_CLAIM: list[Line] = [
    ("agent", "Thanks for holding. I've pulled up your claim for the water damage."),
    ("customer", "Great. Has the adjuster been assigned yet?"),
    ("agent", "Yes, Linda Park is your adjuster, she'll call you within two business days to schedule a visit.",
     A("Linda Park", "within two business days")),
    ("customer", "Okay. What do I need to do in the meantime?"),
    ("agent", "Please take photos of the damage and keep the receipts for any repairs.", A("customer")),
    ("customer", "Will do. Does the policy cover the hotel if we have to move out?", Q("hotel")),
    ("agent", "I'd have to check that with the underwriter, I don't want to give you the wrong answer.", Q("hotel")),
    ("agent", "I'll find out and send you an email by tomorrow evening.", A("agent", "by tomorrow evening")),
    ("customer", "Thank you. And the deductible is five hundred, right?"),
    ("agent", "That's correct, five hundred dollars."),
    ("customer", "Alright, thanks for your help."),
]

EN_ONE_ON_ONE: list[Line] = [
    ("Helen", "How's the onboarding project going?"),
    ("Marcus", "Mostly on track, but the vendor keeps missing deadlines."),
    ("Helen", "Should we escalate to their account manager?"),
    ("Marcus", "I think so, yes. Let's do it.", D()),
    ("Helen", "I'll write to them today and copy you.", A("Helen", "today")),
    ("Marcus", "Thanks. Also, I wanted to ask about the training budget for next year."),
    ("Helen", "Finance hasn't confirmed the numbers, so that's still up in the air.", Q()),
    ("Marcus", "Understood. Could I take the advanced SQL course in March?"),
    ("Helen", "I don't see why not, send me the details.", A("Marcus", "by Friday", "details")),
    ("Marcus", "Will do, I'll send them by Friday.", A("Marcus", "by Friday", "details")),
    ("Helen", "If the budget gets cut, we may have to postpone it."),
]

ZH_SPRINT: list[Line] = [
    ("老杨", "好，开始迭代规划，这次大概有四十个点的容量。"),
    ("小美", "先确认一下，登录的那个bug修好了吗？"),
    ("阿杰", "修好了，昨天已经合进去了。"),
    ("老杨", "那关键问题是，搜索重构要不要放进这个迭代。"),
    ("婷婷", "我建议先别做，设计稿还没出来。"),
    ("小美", "我同意婷婷的意见，放到下个迭代吧。", D("search")),
    ("老杨", "好，搜索重构挪到下个迭代。", D("search")),
    ("阿杰", "那我可以把不稳定的测试清理一下。", A("阿杰")),
    ("老杨", "行，这个你来。婷婷，下周末之前能把设计稿出来吗？", A("婷婷", "下周末前")),
    ("婷婷", "我尽量，但得先跟产品对一下。"),
    ("老杨", "小美，你明天帮婷婷约一下产品。", A("小美", "明天")),
    ("小美", "好。"),
    ("阿杰", "对了，我们还支持IE浏览器吗？", Q("ie")),
    ("老杨", "应该还支持吧，我也不太确定，得跟客户那边确认一下。", Q("ie")),
    ("婷婷", "我周五请假，提前说一下。"),
    ("老杨", "知道了，会后我更新一下看板。", A("老杨", "会后")),
    ("小美", "复盘会是周四还是周五开？"),
    ("老杨", "周四吧，婷婷周五不在。"),
]

ZH_CLAIM: list[Line] = [
    ("坐席", "让您久等了，您的漏水理赔我这边已经调出来了。"),
    ("客户", "好的，查勘员派了吗？"),
    ("坐席", "已经派了，是李工，他会在两个工作日内联系您约上门时间。", A("李工", "两个工作日内")),
    ("客户", "好。那这段时间我需要做什么？"),
    ("坐席", "请您先把受损的地方拍照，维修的发票也要保留好。", A("客户")),
    ("客户", "好的，如果要搬出去住，酒店费用保险管吗？", Q("hotel")),
    ("坐席", "这个我得跟核保确认一下，不想给您错误的答复。", Q("hotel")),
    ("坐席", "我明天晚上之前给您发邮件答复。", A("坐席", "明天晚上前")),
    ("客户", "谢谢。免赔额是五百，对吧？"),
    ("坐席", "对，五百元。"),
    ("客户", "好的，谢谢你。"),
]

ZH_ONE_ON_ONE: list[Line] = [
    ("何姐", "入职项目最近怎么样？"),
    ("小马", "基本按计划，就是供应商老是延期。"),
    ("何姐", "要不要找他们的客户经理反映一下？"),
    ("小马", "我觉得可以，就这么办吧。", D()),
    ("何姐", "我今天给他们写邮件，抄送你。", A("何姐", "今天")),
    ("小马", "谢谢。另外想问一下明年的培训预算。"),
    ("何姐", "财务那边还没给数，这个目前还说不准。", Q()),
    ("小马", "明白。那我三月份能去上高级SQL的课吗？"),
    ("何姐", "我看没问题，你把课程信息发我。", A("小马", "周五前", "details")),
    ("小马", "好的，我周五前发给你。", A("小马", "周五前", "details")),
    ("何姐", "要是预算砍了，可能就得往后推。"),
]

FRESH_EN = [EN_SPRINT, EN_CLAIM, EN_ONE_ON_ONE]
FRESH_ZH = [ZH_SPRINT, ZH_CLAIM, ZH_ONE_ON_ONE]


# ------------------------------------------------------------------------------------------------------- evaluation


def _utterances(lines: list[Line], language: str) -> list[MinutesUtterance]:
    """Back-to-back utterances, about as long as it takes to say them."""
    out, t = [], 0.0
    for speaker, text, *_ in lines:
        dur = max(1.0, (len(text) * 0.2 if language == "zh" else len(text.split()) * 0.35))
        out.append(MinutesUtterance(t, t + dur, speaker, text, language))
        t += dur + 0.6
    return out


@dataclass
class Score:
    tp: int = 0
    n_pred: int = 0
    n_gold: int = 0
    owner_ok: int = 0
    due_ok: int = 0

    def add(self, other: Score) -> None:
        for f in ("tp", "n_pred", "n_gold", "owner_ok", "due_ok"):
            setattr(self, f, getattr(self, f) + getattr(other, f))

    @property
    def precision(self) -> float:
        return self.tp / self.n_pred if self.n_pred else 1.0

    @property
    def recall(self) -> float:
        return self.tp / self.n_gold if self.n_gold else 1.0


def _gold(lines: list[Line], kind: type) -> list[tuple[set[int], Label]]:
    """Gold items of one kind: the utterance indices where each may be reported, and its label."""
    items: dict[object, tuple[set[int], Label]] = {}
    for i, line in enumerate(lines):
        for lab in line[2:]:
            if isinstance(lab, kind):
                k = (lab.key, type(lab)) if lab.key else (i, id(lab))
                items.setdefault(k, (set(), lab))[0].add(i)
    return list(items.values())


def _score(lines: list[Line], language: str, kind: type) -> Score:
    utts = _utterances(lines, language)
    index = {u.start_s: i for i, u in enumerate(utts)}
    fn = {D: decisions, A: action_items, Q: open_questions}[kind]
    preds = fn(utts)
    # An item's time is the start of the sentence it came from, which is its utterance's start.
    pred_idx = [index[p.start_s] for p in preds]
    gold = _gold(lines, kind)
    sc = Score(n_pred=len(preds), n_gold=len(gold))
    used: set[int] = set()
    for where, lab in gold:
        for pi, p in enumerate(preds):
            if pi not in used and pred_idx[pi] in where:
                used.add(pi)
                sc.tp += 1
                if isinstance(lab, A):
                    sc.owner_ok += p.owner == lab.owner
                    sc.due_ok += p.due == lab.due
                break
    return sc


def evaluate(meetings: list[list[Line]], language: str, kind: type) -> Score:
    total = Score()
    for lines in meetings:
        total.add(_score(lines, language, kind))
    return total


# ------------------------------------------------------------------------------------------- precision and recall
# Thresholds sit a little under what the final rules measure on all three parts (DEV + HELD_OUT + FRESH); see the
# module docstring for which parts were blind when. Owner and due accuracy are over the items found.

ALL = {"en": DEV_EN + HELD_EN + FRESH_EN, "zh": DEV_ZH + HELD_ZH + FRESH_ZH}

THRESHOLDS = {  # (language, kind): (min precision, min recall)
    ("en", D): (0.9, 0.9), ("en", A): (0.9, 0.85), ("en", Q): (0.9, 0.9),
    ("zh", D): (0.9, 0.8), ("zh", A): (0.9, 0.8), ("zh", Q): (0.9, 0.9),
}


def test_labelled_set_is_big_enough() -> None:
    for lang in ("en", "zh"):
        assert sum(len(m) for m in ALL[lang]) >= 100
        for kind in (D, A, Q):
            assert sum(len(_gold(m, kind)) for m in ALL[lang]) >= 8, (lang, kind)


@pytest.mark.parametrize(("language", "kind"), list(THRESHOLDS))
def test_precision_and_recall(language: str, kind: type) -> None:
    sc = evaluate(ALL[language], language, kind)
    p_min, r_min = THRESHOLDS[(language, kind)]
    assert sc.precision >= p_min, f"{language} {kind.__name__}: precision {sc.precision:.2f} ({sc.tp}/{sc.n_pred})"
    assert sc.recall >= r_min, f"{language} {kind.__name__}: recall {sc.recall:.2f} ({sc.tp}/{sc.n_gold})"
    if kind is A:
        assert sc.owner_ok >= 0.9 * sc.tp and sc.due_ok >= 0.9 * sc.tp


# Said alone, none of these is a decision or an action item (small talk, the call itself, negations, hypotheticals,
# past events, opinions).
HARD_NEGATIVES = {
    "en": ["I'll be honest with you, the numbers are not great.", "I'll tell you what happened last time.",
           "Let me share my screen.", "Let's take a five minute break.", "I can't make it on Friday.",
           "If we decided to outsource, it would cost more.", "I decided to take the train today.",
           "Did we agree on the price?", "Last year we went with Oracle.", "I won't be able to send it by Friday.",
           "Can you hear me okay?", "You'll see the refund on your statement next week.",
           "Could you spell your last name?", "Please hold for a moment.", "Sorry, can you repeat the account number?",
           "Let me pull up your account.", "I'm going to put you on hold for a second.",
           "Let's move on to the next item.", "I can see the charge here.", "We never agreed to that price.",
           "I don't think we've decided anything.", "Let's see what the data says.",
           "I'll let you go, thanks for your time.", "If you want, I can walk you through it.", "Friday is a holiday."],
    "zh": ["我跟你说一下情况。", "我先共享一下屏幕。", "我们休息五分钟吧。", "我周五去不了。", "如果外包的话，成本会更高。",
           "去年我们用的是甲骨文。", "我已经把文件发给他了。", "能听清楚吗？", "麻烦您稍等一下。", "请您再说一遍卡号。",
           "我帮您查一下账户。", "我发现这个问题很严重。", "我觉得这个方案不错。", "这个还没决定。", "我们还没有决定用哪家。",
           "要不要推迟到下周？", "我来介绍一下今天的议程。", "算了，我们先说下一个。", "我建议大家先看一下材料。",
           "如果决定采用方案B，预算要翻倍。", "您的退款会在三到五个工作日内到账。", "我们先说下一个议题。", "我不负责这块。",
           "你好，听得到吗？", "我明天不在办公室。"],
}


@pytest.mark.parametrize("language", ["en", "zh"])
def test_hard_negatives_give_nothing(language: str) -> None:
    wrong = []
    for text in HARD_NEGATIVES[language]:
        utts = [MinutesUtterance(0.0, 3.0, "A", text, language)]
        if decisions(utts) or action_items(utts):
            wrong.append(text)
    assert not wrong


# ------------------------------------------------------------------------------------------------------ unit cases

def _u(lines: list[tuple[str, str]], language: str = "en") -> list[MinutesUtterance]:
    return _utterances(list(lines), language)


def test_empty_input() -> None:
    assert decisions([]) == [] and action_items([]) == [] and open_questions([]) == []


def test_owner_is_the_speaker_the_named_addressee_or_who_took_it_on() -> None:
    items = action_items(_u([("Ann", "I'll send the deck by Friday."),
                             ("Ann", "Mary, can you book the room for next Tuesday?"),
                             ("Ann", "Can you file the expense report?"), ("Ben", "Sure, will do."),
                             ("Ann", "Please update the wiki before Monday.")]))
    got = [(i.owner, i.due) for i in items]
    assert got == [("Ann", "by Friday"), ("Mary", "next Tuesday"), ("Ben", None), (None, "before Monday")]
    assert items[0].what == "Send the deck" and items[0].evidence == "I'll send the deck by Friday."


def test_mandarin_owner_and_due() -> None:
    items = action_items(_u([("王", "小王你负责下周五之前把报价单发给客户。"), ("李", "我来负责整理会议纪要，月底前发出来。"),
                             ("王", "张经理，麻烦你明天把合同发过来。")], "zh"))
    assert [(i.owner, i.due) for i in items] == [("小王", "下周五前"), ("李", "月底前"), ("张经理", "明天")]
    assert items[0].what == "把报价单发给客户"


def test_traditional_chinese_is_read_as_simplified() -> None:
    assert decisions(_u([("A", "我們決定採用方案B。")], "zh"))
    assert not decisions(_u([("A", "我們還沒決定。")], "zh"))


def test_a_bare_agreement_settles_the_proposal() -> None:
    got = decisions(_u([("Ann", "Should we push the launch to March?"), ("Ben", "Agreed.")]))
    assert len(got) == 1 and got[0].speaker == "Ben"
    assert got[0].text == "Should we push the launch to March? — Agreed."
    # ... but not a statement that is no proposal
    assert not decisions(_u([("Ann", "The vendor missed the deadline again."), ("Ben", "Agreed.")]))


def test_question_answered_or_not() -> None:
    answered = _u([("Ann", "What's the budget for the pilot?"), ("Ben", "About twenty thousand dollars.")])
    assert open_questions(answered) == []
    shrugged = _u([("Ann", "What's the budget for the pilot?"), ("Ben", "No idea, to be honest.")])
    assert [q.text for q in open_questions(shrugged)] == ["What's the budget for the pilot?"]
    ignored = _u([("Ann", "Who is presenting to the board?"), ("Ben", "Let's move on to hiring.")])
    assert len(open_questions(ignored)) == 1
    small_talk = _u([("Ann", "Can everyone hear me?"), ("Ben", "Let's move on.")])
    assert open_questions(small_talk) == []


def test_unpunctuated_mandarin() -> None:
    """Whisper often writes Mandarin with spaces for pauses and no punctuation at all."""
    utts = _u([("王", "那我们决定推迟到下周三上线 陈工你负责下周五之前把联调做完 定价页面的文案谁来写呢"),
               ("陈", "我们先说下一个议题")], "zh")
    assert [d.text for d in decisions(utts)] == ["那我们决定推迟到下周三上线"]
    assert [(a.what, a.owner, a.due) for a in action_items(utts)] == [("把联调做完", "陈工", "下周五前")]
    assert [q.text for q in open_questions(utts)] == ["定价页面的文案谁来写呢"]


def test_input_order_does_not_matter() -> None:
    utts = _u([("Ann", "I'll send the deck by Friday."), ("Ben", "We'll go with vendor B.")])
    assert action_items(utts[::-1]) == action_items(utts) and decisions(utts[::-1]) == decisions(utts)


def test_no_transcript_text_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for lines, lang in ((EN_LAUNCH, "en"), (ZH_LAUNCH, "zh")):
        utts = _utterances(lines, lang)
        decisions(utts), action_items(utts), open_questions(utts)
    assert caplog.records == []


def test_long_adverb_runs_do_not_backtrack() -> None:
    """A nested, backtracking run of adverbs once took 28 s on this 50-character sentence."""
    text = "他会" + "这边" * 200 + "明天" * 200 + "啊"
    t = time.perf_counter()
    for fn in (decisions, action_items, open_questions):
        fn([MinutesUtterance(0.0, 5.0, "A", text, "zh"), MinutesUtterance(0.0, 5.0, "A", "okay " * 400 + "?", "en")])
    assert time.perf_counter() - t < 2.0
