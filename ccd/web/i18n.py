"""The panel's two languages, English and Simplified Chinese (``users.language``).

Templates call ``_("key")``; the page hands the browser the same table as JSON for the
strings its script writes. A missing key falls back to English, then to the key itself.
"""

from __future__ import annotations

LANGUAGES = ("en", "zh-CN")
DEFAULT = "en"

_T: dict[str, tuple[str, str]] = {
    # general
    "app": ("ccd call center", "ccd 呼叫中心"),
    "login": ("Log in", "登录"),
    "logout": ("Log out", "退出"),
    "username": ("Username", "用户名"),
    "password": ("Password", "密码"),
    "login_failed": ("Wrong username or password.", "用户名或密码错误。"),
    "login_locked": ("Too many failed attempts: logins with this username are locked for "
                     "a while.", "登录失败次数过多,该用户名暂时锁定。"),
    "language": ("Language", "语言"),
    "save": ("Save", "保存"),
    "cancel": ("Cancel", "取消"),
    "search": ("Search", "搜索"),
    "apply": ("Apply", "应用"),
    "panel": ("Agent panel", "坐席面板"),
    "wallboard": ("Wallboard", "监控大屏"),
    "tickets": ("Tickets", "工单"),
    "customers": ("Customers", "客户"),
    "role_agent": ("Agent", "坐席"),
    "role_supervisor": ("Supervisor", "班长"),
    "role_admin": ("Administrator", "管理员"),
    "forbidden": ("You are not allowed to do that.", "您无权执行此操作。"),
    "not_found": ("Not found.", "未找到。"),
    "connected": ("Live", "已连接"),
    "disconnected": ("Connection lost: reconnecting…", "连接中断,正在重连…"),
    "pbx_down": ("The phone system is not reachable.", "电话系统无法连接。"),
    "no_agent": ("Your user has no phone (agent) assigned.", "您的账户未绑定坐席分机。"),
    "done": ("Done.", "已完成。"),
    # campaigns (preview dialling, wallboard)
    "campaigns": ("Campaigns", "外呼活动"),
    "campaign": ("Campaign", "活动"),
    "mode": ("Mode", "模式"),
    "contacts_left": ("Contacts to call", "待呼联系人"),
    "ringing": ("Ringing", "振铃中"),
    "abandon_rate": ("Abandoned (limit 3%)", "放弃率(上限 3%)"),
    "preview_title": ("Preview dialling", "预览式外呼"),
    "preview_next": ("Next contact", "下一个联系人"),
    "preview_skip": ("Later", "稍后"),
    "preview_none": ("No contact is due now.", "当前没有待呼联系人。"),
    "waiting_confirmation": ("Sent; waiting for the phone system to confirm.",
                             "已发送,等待电话系统确认。"),
    "none": ("none", "无"),
    "seconds": ("s", "秒"),
    # agent states
    "state": ("State", "状态"),
    "state_logged_out": ("Logged out", "未登录"),
    "state_available": ("Available", "空闲"),
    "state_ringing": ("Ringing", "振铃"),
    "state_on_call": ("On a call", "通话中"),
    "state_on_hold": ("On hold", "保持中"),
    "state_wrapup": ("Wrap-up", "话后处理"),
    "state_paused": ("Paused", "小休"),
    "state_unavailable": ("Phone offline", "话机离线"),
    "since": ("for", "持续"),
    "reason": ("Reason", "原因"),
    "go_available": ("Available", "示闲"),
    "go_pause": ("Pause", "示忙"),
    "go_login": ("Log in to queues", "签入队列"),
    "go_logout": ("Log out of queues", "签出队列"),
    # queues
    "queues": ("Queues", "队列"),
    "queue": ("Queue", "队列"),
    "waiting": ("Waiting", "排队"),
    "longest_wait": ("Longest wait", "最长等待"),
    "sl_today": ("Service level today", "今日服务水平"),
    "offered": ("Offered", "呼入"),
    "answered": ("Answered", "接听"),
    "abandoned": ("Abandoned", "放弃"),
    "agents_available": ("Available", "空闲"),
    "agents_busy": ("Busy", "忙碌"),
    "agents_paused": ("Paused", "小休"),
    "agents_logged_in": ("Logged in", "签入"),
    # screen pop and call
    "call": ("Call", "通话"),
    "no_call": ("No call.", "当前无通话。"),
    "incoming": ("Incoming call", "来电"),
    "caller": ("Caller", "主叫"),
    "caller_name": ("Caller name", "主叫名称"),
    "did": ("Dialled number", "被叫号码"),
    "wait": ("Waited", "等待"),
    "ivr_path": ("IVR path", "IVR 路径"),
    "digits": ("Digits entered", "按键"),
    "customer": ("Customer", "客户"),
    "unknown_caller": ("Unknown caller", "未知来电"),
    "vip": ("VIP", "VIP"),
    "account_no": ("Account", "账号"),
    "notes": ("Notes", "备注"),
    "phone": ("Phone", "电话"),
    "name": ("Name", "姓名"),
    "create_customer": ("Create customer", "新建客户"),
    "recent_calls": ("Recent interactions", "最近联系"),
    "open_tickets": ("Open tickets", "未结工单"),
    "hangup": ("Hang up", "挂断"),
    "hold": ("Hold", "保持"),
    "unhold": ("Resume", "取回"),
    "transfer": ("Transfer", "转接"),
    "blind": ("Blind", "盲转"),
    "attended": ("Attended", "咨询转"),
    "to_agent": ("Agent", "坐席"),
    "to_queue": ("Queue", "队列"),
    "to_number": ("Number", "号码"),
    "target": ("Target", "目标"),
    "rec_pause": ("Pause recording", "暂停录音"),
    "rec_resume": ("Resume recording", "恢复录音"),
    "recording": ("Recording", "录音中"),
    "recording_muted": ("Recording paused", "录音已暂停"),
    "new_ticket": ("Create ticket", "新建工单"),
    "call_state_ringing": ("Ringing", "振铃"),
    "call_state_talking": ("Talking", "通话"),
    "call_state_on_hold": ("On hold", "保持"),
    "call_state_ended": ("Ended", "已结束"),
    "transferred": ("Transferred", "已转接"),
    "dial": ("Dial", "拨号"),
    "click_to_dial": ("Click to dial", "点击拨号"),
    "number": ("Number", "号码"),
    "wrapup_title": ("Wrap-up", "话后小结"),
    "disposition": ("Disposition", "处理结果"),
    "wrapup_saved": ("Wrap-up saved.", "小结已保存。"),
    # wallboard
    "agents": ("Agents", "坐席"),
    "agent": ("Agent", "坐席"),
    "extension": ("Extension", "分机"),
    "in_state": ("Time in state", "状态时长"),
    "current_call": ("Current call", "当前通话"),
    "actions": ("Actions", "操作"),
    "listen": ("Listen", "监听"),
    "whisper": ("Whisper", "耳语"),
    "barge": ("Barge", "强插"),
    "force_pause": ("Pause", "强制示忙"),
    "force_logout": ("Log out", "强制签出"),
    "chart_volume": ("Today per 15 minutes: offered, answered, abandoned",
                     "今日每 15 分钟:呼入、接听、放弃"),
    "chart_sl": ("Service level per 15 minutes (%)", "每 15 分钟服务水平 (%)"),
    "all_queues": ("All queues", "全部队列"),
    # tickets
    "ticket": ("Ticket", "工单"),
    "subject": ("Subject", "标题"),
    "description": ("Description", "描述"),
    "status": ("Status", "状态"),
    "priority": ("Priority", "优先级"),
    "assignee": ("Assigned to", "处理人"),
    "assign": ("Assign", "指派"),
    "unassigned": ("Unassigned", "未指派"),
    "due": ("Due", "截止"),
    "set_due": ("Set due date", "设置截止时间"),
    "created": ("Created", "创建"),
    "updated": ("Updated", "更新"),
    "comments": ("Comments", "评论"),
    "comment": ("Comment", "评论"),
    "add_comment": ("Add comment", "添加评论"),
    "history": ("History", "历史"),
    "change_status": ("Change status", "变更状态"),
    "status_new": ("New", "新建"),
    "status_open": ("Open", "处理中"),
    "status_pending": ("Pending", "挂起"),
    "status_resolved": ("Resolved", "已解决"),
    "status_closed": ("Closed", "已关闭"),
    "priority_low": ("Low", "低"),
    "priority_normal": ("Normal", "普通"),
    "priority_high": ("High", "高"),
    "priority_urgent": ("Urgent", "紧急"),
    "any": ("Any", "全部"),
    "mine": ("Mine", "我的"),
    "sort": ("Sort", "排序"),
    "order_asc": ("Ascending", "升序"),
    "order_desc": ("Descending", "降序"),
    "sort_created": ("Created", "创建时间"),
    "sort_updated": ("Updated", "更新时间"),
    "sort_due": ("Due", "截止时间"),
    "sort_priority": ("Priority", "优先级"),
    "sort_status": ("Status", "状态"),
    "sort_id": ("Number", "编号"),
    "text": ("Text", "文本"),
    "overdue": ("Overdue", "已逾期"),
    "from_call": ("From call", "来自通话"),
    "timeline": ("Timeline", "时间线"),
    "no_results": ("Nothing found.", "没有结果。"),
    "previous": ("Previous", "上一页"),
    "next": ("Next", "下一页"),
    "ev_created": ("created", "创建"),
    "ev_comment": ("comment", "评论"),
    "ev_status": ("status", "状态"),
    "ev_assigned": ("assigned", "指派"),
    "ev_due": ("due date", "截止时间"),
    "ev_call": ("call", "通话"),
    "ev_ticket": ("ticket", "工单"),
    "ev_wrapup": ("wrap-up", "小结"),
}

#: strings the browser script needs (sent as JSON with each page)
JS_KEYS = (
    "connected", "disconnected", "pbx_down", "done", "waiting_confirmation", "none", "seconds",
    "state_logged_out", "state_available", "state_ringing", "state_on_call", "state_on_hold",
    "state_wrapup", "state_paused", "state_unavailable", "incoming", "unknown_caller", "vip",
    "account_no", "notes", "phone", "name", "create_customer", "no_call", "call_state_ringing",
    "call_state_talking", "call_state_on_hold", "call_state_ended", "transferred", "recording",
    "recording_muted", "wrapup_saved", "listen", "whisper", "barge", "force_pause",
    "force_logout", "offered", "answered", "abandoned", "chart_sl", "forbidden", "customer",
    "status_new", "status_open", "status_pending", "status_resolved", "status_closed",
    "new_ticket", "queue", "wait", "agent", "preview_none", "dial",
)


def normalize(lang: str | None) -> str:
    """A supported language code (``zh``, ``zh-cn`` -> ``zh-CN``); English otherwise."""
    if not lang:
        return DEFAULT
    low = lang.strip().lower()
    if low.startswith("zh"):
        return "zh-CN"
    return "en" if low.startswith("en") else DEFAULT


def translate(key: str, lang: str) -> str:
    """The text of ``key`` in ``lang``."""
    pair = _T.get(key)
    if pair is None:
        return key
    return pair[1] if lang == "zh-CN" and pair[1] else pair[0]


def js_table(lang: str) -> dict[str, str]:
    """The strings of :data:`JS_KEYS` in ``lang``."""
    return {k: translate(k, lang) for k in JS_KEYS}
