// English and Chinese. Follows the browser until the user picks one; the choice is kept.
const KEY = "parley.locale";
export const LOCALES = ["en", "zh-CN"];

const STRINGS = {
  en: {
    "tab.chats": "Chats", "tab.contacts": "Contacts", "tab.me": "Me",
    online: "online", offline: "offline", today: "Today", yesterday: "Yesterday", loading: "Loading…",
    back: "Back", close: "Close", cancel: "Cancel", ok: "OK", save: "Save", saved: "Saved.",
    "conn.offline": "Connecting…", "conn.lost": "Offline — reconnecting…", "conn.syncing": "Updating…",
    "error.network": "Network problem. Try again.", "error.upload": "The upload failed.",
    "chats.empty": "No chats yet. Add a friend to start talking.", "pick.chat": "Pick a chat to start messaging",
    "chat.placeholder": "Message", "chat.send": "Send", "chat.attach": "More", "chat.emoji": "Emoji", "chat.more": "Chat options",
    "chat.typing": "typing…", "chat.typing_named": "{name} typing…", "chat.members": "{n} members", "chat.bot": "robot", "chat.someone": "Someone",
    "chat.beginning": "Beginning of the conversation", "chat.inactive": "You are no longer in this chat.", "chat.dissolved": "This group was dissolved.",
    "chat.image": "Photo", "chat.video": "Video", "chat.file": "File", "chat.location": "Location", "chat.not_found": "Chat not found.",
    "chat.pin": "Pin to top", "chat.unpin": "Unpin", "chat.mute": "Mute notifications", "chat.unmute": "Unmute", "chat.hide": "Delete chat",
    "chat.hide_confirm": "Remove this chat from the list? It comes back when a new message arrives.",
    "msg.sending": "Sending…", "msg.sent": "Sent", "msg.read": "Read", "msg.failed": "Not sent", "msg.retry": "Send again",
    "msg.recalled": "A message was recalled", "msg.recalled_admin": "A message was removed by an administrator",
    "msg.recalled_by": "{name} recalled a message", "msg.recalled_me": "You recalled a message",
    // Message actions: the menu, quotes, edits, reactions, forwarding, delete for me.
    "msg.recalled_group_admin": "A group admin recalled a message", "msg.recalled_by_me": "You recalled a message from {name}",
    "msg.reedit": "Re-edit", "msg.edited": "edited", "msg.forwarded": "Forwarded", "msg.quote_recalled": "The quoted message was recalled",
    "msg.merged": "Chat history", "msg.merged_more": "{n} messages",
    "act.menu": "Message actions", "act.reply": "Reply", "act.copy": "Copy", "act.copied": "Copied.", "act.forward": "Forward",
    "act.react": "React", "act.more_emoji": "More emoji", "act.pin": "Pin", "act.unpin": "Unpin", "act.edit": "Edit", "act.recall": "Recall",
    "act.select": "Select", "act.hide": "Delete for me", "act.hide_confirm": "Delete {n} message(s) from your devices? The others still see them.",
    "act.history": "Edit history", "act.original": "Original", "act.version": "Edit {n}", "act.current": "Current",
    "act.reactions": "Reactions", "act.who_reacted": "Who reacted", "act.pinned": "Pinned.", "act.unpinned": "Unpinned.",
    "fwd.title": "Forward to", "fwd.separate": "One by one", "fwd.merged": "Combined", "fwd.title_label": "Title", "fwd.send": "Send",
    "fwd.pick": "Pick at least one chat.", "fwd.done": "Forwarded.", "fwd.failed": "Not sent to {name}: {reason}", "fwd.nothing": "Nothing here can be forwarded.",
    "fwd.default_title": "Chat history", "act.selected": "{n} selected",
    "sanction.muted": "An administrator muted you: your messages are not sent for now.", "sanction.unmuted": "You can send messages again.",
    "speak.account_muted": "Your account is muted by an administrator.", "speak.account_muted_until": "Your account is muted until {time}.",
    "speak.member_muted": "You are muted in this group.", "speak.member_muted_until": "You are muted in this group until {time}.",
    "speak.all_muted": "Everyone is muted by the admins.",
    "msg.image": "Photo", "msg.open_image": "Open photo", "msg.video": "Video", "msg.file": "File",
    "msg.location": "Location", "msg.map": "Map", "msg.download": "Download", "msg.unsupported": "Unsupported message",
    // Voice messages: the list's line ({mss} = 0:07, {s} = 7) and the bubble (views/voice.js).
    "msg.voice": "Voice", "msg.voice_line": "[Voice] {mss}", "voiceplay.play": "Play voice message, {n} seconds",
    "voiceplay.play_one": "Play voice message, 1 second", "voiceplay.pause": "Pause voice message",
    "voiceplay.failed": "This voice message cannot be played", "voiceplay.unplayed": "Not played yet",
    "voiceplay.unplayed_suffix": ", not played yet", "voiceplay.recording": "Voice messages do not play while you record.",
    "sys.generic": "Group updated", "sys.group_created": "Group created",
    "loc.title": "Place name", "loc.lat": "Latitude", "loc.lng": "Longitude", "loc.use_mine": "Use my location", "loc.locating": "Locating…",
    "loc.denied": "Location is not available. Enter coordinates instead.", "loc.unavailable": "This browser cannot locate you.",
    "loc.invalid": "Enter a latitude (−90…90) and a longitude (−180…180).", "loc.my_location": "My location", "loc.pinned": "Pinned location",
    "contacts.requests": "New friends", "contacts.add": "Add friends", "contacts.groups": "Groups ({n})", "contacts.friends": "Friends ({n})",
    "contacts.no_friends": "No friends yet.", "contacts.profile": "Profile", "contacts.message": "Message", "contacts.set_remark": "Set remark",
    "contacts.remove": "Remove friend", "contacts.remove_confirm": "Remove {name} from your friends?", "contacts.block": "Block",
    "contacts.block_confirm": "Block {name}? They can no longer message you.", "contacts.blocked": "Blocked.", "contacts.not_friend": "Not in your contacts.",
    "search.placeholder": "Username, nickname or group", "search.users": "People", "search.groups": "Groups", "search.none": "Nothing found.",
    "search.add": "Add", "search.requested": "Requested", "search.join": "Join", "search.ask_join": "Ask to join",
    "search.request_title": "Add {name}", "search.request_default": "Hi, I'm {name}", "search.send_request": "Send request", "search.request_sent": "Request sent.",
    "requests.accept": "Accept", "requests.reject": "Decline", "requests.withdraw": "Withdraw", "requests.waiting": "Waiting for an answer",
    "requests.none": "No friend requests.", "requests.accepted": "Added", "requests.rejected": "Declined", "requests.withdrawn": "Withdrawn", "requests.pending": "Pending",
    "group.create": "New group", "group.name": "Group name", "group.pick_members": "Members", "group.no_friends_to_pick": "No friends to add.",
    "group.info": "Group info", "group.intro": "Introduction", "group.announcement": "Announcement", "group.no_announcement": "No announcement.",
    "group.members": "Members", "group.invite": "Invite", "group.join_requests": "Join requests", "group.edit": "Edit group",
    "group.mute_all": "Mute everyone", "group.unmute_all": "Let everyone speak", "group.leave": "Leave group", "group.leave_confirm": "Leave {name}?",
    "group.dissolve": "Dissolve group", "group.dissolve_confirm": "Dissolve {name} for everyone?", "group.reason": "Reason (optional)",
    "group.make_admin": "Make admin", "group.make_member": "Remove admin", "group.transfer": "Make owner", "group.remove": "Remove from group",
    "group.mute_member": "Mute for an hour", "group.unmute_member": "Unmute",
    "group.role_owner": "Owner", "group.role_admin": "Admin", "group.role_member": "Member",
    "group.policy": "Who can join", "group.policy_open": "Anyone can join", "group.policy_approval": "Approval needed", "group.policy_invite": "Invitation only",
    "group.discoverable": "Can be found in search",
    "me.profile": "Profile", "me.devices": "Devices", "me.settings": "Settings", "me.password": "Password and account", "me.sign_out": "Sign out",
    "me.sign_out_confirm": "Sign out of this device?",
    "profile.nickname": "Nickname", "profile.avatar": "Avatar URL", "profile.signature": "What's up",
    "profile.change_photo": "Change photo", "profile.avatar_link": "Or use a link (https://…)", "profile.crop_title": "Crop the photo",
    "profile.crop_hint": "Drag or use the arrow keys to move; zoom with the slider, the wheel, a pinch or + and −.", "profile.crop_area": "Photo crop area",
    "profile.zoom": "Zoom", "profile.use_photo": "Use photo", "profile.photo_saved": "Photo updated", "profile.uploading": "Uploading…",
    "profile.not_image": "This file is not a picture the browser can open.",
    "devices.this": "This device", "devices.sign_out": "Sign out", "devices.sign_out_others": "Sign out all other devices",
    "devices.others_confirm": "Every other device will need to sign in again.", "devices.last_seen": "last seen",
    "settings.language": "Language", "settings.theme": "Theme", "theme.auto": "Follow the system", "theme.light": "Light", "theme.dark": "Dark",
    "lang.en": "English", "lang.zh-CN": "简体中文",
    "emoji.none": "No recent emoji yet.", "emoji.recent": "Recent", "emoji.smileys": "Smileys", "emoji.people": "People", "emoji.animals": "Nature",
    "emoji.food": "Food", "emoji.activities": "Activities", "emoji.travel": "Places", "emoji.objects": "Objects", "emoji.symbols": "Symbols",
    // Composer (reply, edit, mentions), pin bar, unread divider and jumps.
    "chats.at_me": "[@me]", "chats.notices": "Notices", "chat.notice_sub": "System notices", "chat.notice_readonly": "Notices are read-only.", "chat.notice_label": "Notice",
    "composer.reply_to": "Reply to {name}", "composer.editing": "Editing", "composer.cancel": "Cancel",
    "chats.draft": "[Draft]", "composer.drop": "Drop to send", "composer.too_large": "{name} is over the limit of {max}.",
    "composer.cannot_send": "You cannot send messages here.", "time.just_now": "just now",
    "composer.edited_nothing": "Nothing changed.", "mention.all": "Everyone", "mention.all_name": "all", "mention.list": "Mention someone",
    // Recording a voice message (views/voicerecord.js).
    "voice.record": "Record a voice message", "voice.recording": "Recording a voice message", "voice.send": "Send voice message",
    "voice.cancel": "Cancel recording", "voice.slide_cancel": "Slide up to cancel", "voice.release_cancel": "Release to cancel",
    "voice.too_short": "Too short", "voice.left": "{n}″ left", "voice.stopped": "Recording stopped",
    "voice.upload_failed": "Voice message not sent", "voice.retry": "Send again", "voice.discard": "Discard",
    "voice.denied": "Parley needs your microphone to record. Allow it in the browser's site settings.",
    "voice.no_microphone": "No microphone was found.", "voice.unsupported": "This browser cannot record voice messages.",
    "voice.insecure": "Recording needs a secure (https) connection.", "voice.failed": "The microphone could not be started.",
    "pins.label": "Pinned", "pins.unpin": "Unpin", "pins.count": "{i}/{n}",
    "jump.new_messages": "{n} new messages", "jump.bottom": "Newest messages", "jump.mention": "You were mentioned", "jump.not_found": "This message is not available.",
    // Search (chat list and one chat) and notifications (banner, Me page).
    "search.box": "Search", "search.contacts": "Contacts", "search.messages": "Messages", "search.in_chat": "Search in chat",
    "search.partial": "Not every message could be searched in time; try more specific words.",
    "notify.ask": "Turn on notifications?", "notify.enable": "Enable", "notify.not_now": "Not now", "notify.new_message": "New message",
    "notify.title": "Notifications", "notify.on": "Notifications on this device", "notify.sound": "Sound",
    "notify.previews": "Show message text in notifications", "notify.push": "Push when Parley is closed (this device)",
    "notify.push_on": "On", "notify.push_off": "Off", "notify.push_denied": "Blocked by the browser", "notify.push_unsupported": "Not supported by this browser",
    "notify.denied": "The browser blocks notifications for Parley. Allow them in the site settings.", "notify.unsupported": "This browser cannot show notifications.",
    "notify.push_devices": "Devices with push on", "notify.no_push_devices": "No device has push on.", "notify.push_failed": "Push could not be turned on.",
    "notify.push_enable": "Turn on", "notify.push_disable": "Turn off",
    // /login/token (app/static/js/token-login.js)
    "token.page_title": "Sign in · Parley", "token.title": "Sign in to Parley?", "token.wait": "One moment.",
    "token.ask": "An app sent you here with a sign-in link. Continue only if you opened it yourself.",
    "token.current": "You are signed in as {name}; continue with the link's account instead?",
    "token.confirm": "Sign in", "token.switch": "Continue with the link's account", "token.open": "Open the chat",
    "token.done_title": "Signed in", "token.done": "You are now signed in as {name}.", "token.failed_title": "Could not sign in",
    "token.password": "Sign in with a password instead", "token.unreachable": "The server cannot be reached; try again.",
    "token.invalid": "This sign-in link is invalid, has expired or was used already.", "token.replayed": "This sign-in link was used already.",
    "token.banned": "This account is banned.", "token.protected": "This account cannot be signed in with a link.",
    "token.rate_limited": "Too many sign-in attempts; wait a moment and try again.", "token.not_found": "This account does not exist.",
  },
  "zh-CN": {
    "tab.chats": "消息", "tab.contacts": "通讯录", "tab.me": "我",
    online: "在线", offline: "离线", today: "今天", yesterday: "昨天", loading: "加载中…",
    back: "返回", close: "关闭", cancel: "取消", ok: "确定", save: "保存", saved: "已保存。",
    "conn.offline": "连接中…", "conn.lost": "离线 — 正在重新连接…", "conn.syncing": "收取中…",
    "error.network": "网络异常，请重试。", "error.upload": "上传失败。",
    "chats.empty": "还没有聊天。添加好友开始聊天吧。", "pick.chat": "选择一个聊天开始发消息",
    "chat.placeholder": "发消息", "chat.send": "发送", "chat.attach": "更多", "chat.emoji": "表情", "chat.more": "聊天设置",
    "chat.typing": "对方正在输入…", "chat.typing_named": "{name} 正在输入…", "chat.members": "{n} 位成员", "chat.bot": "机器人", "chat.someone": "有人",
    "chat.beginning": "以上是全部消息", "chat.inactive": "你已不在此聊天中。", "chat.dissolved": "该群已解散。",
    "chat.image": "照片", "chat.video": "视频", "chat.file": "文件", "chat.location": "位置", "chat.not_found": "找不到该聊天。",
    "chat.pin": "置顶聊天", "chat.unpin": "取消置顶", "chat.mute": "消息免打扰", "chat.unmute": "关闭免打扰", "chat.hide": "删除聊天",
    "chat.hide_confirm": "从列表中移除该聊天？收到新消息时会重新出现。",
    "msg.sending": "发送中…", "msg.sent": "已发送", "msg.read": "已读", "msg.failed": "发送失败", "msg.retry": "重新发送",
    "msg.recalled": "一条消息已撤回", "msg.recalled_admin": "一条消息已被管理员撤回",
    "msg.recalled_by": "{name} 撤回了一条消息", "msg.recalled_me": "你撤回了一条消息",
    "msg.recalled_group_admin": "群管理员撤回了一条消息", "msg.recalled_by_me": "你撤回了 {name} 的一条消息",
    "msg.reedit": "重新编辑", "msg.edited": "已编辑", "msg.forwarded": "转发", "msg.quote_recalled": "引用的消息已撤回",
    "msg.merged": "聊天记录", "msg.merged_more": "共 {n} 条",
    "act.menu": "消息操作", "act.reply": "回复", "act.copy": "复制", "act.copied": "已复制。", "act.forward": "转发",
    "act.react": "表态", "act.more_emoji": "更多表情", "act.pin": "置顶", "act.unpin": "取消置顶", "act.edit": "编辑", "act.recall": "撤回",
    "act.select": "多选", "act.hide": "删除", "act.hide_confirm": "从你的设备上删除这 {n} 条消息？其他人仍能看到。",
    "act.history": "编辑记录", "act.original": "原始消息", "act.version": "第 {n} 次编辑", "act.current": "当前",
    "act.reactions": "表态", "act.who_reacted": "谁表态了", "act.pinned": "已置顶。", "act.unpinned": "已取消置顶。",
    "fwd.title": "转发给", "fwd.separate": "逐条转发", "fwd.merged": "合并转发", "fwd.title_label": "标题", "fwd.send": "发送",
    "fwd.pick": "请至少选择一个聊天。", "fwd.done": "已转发。", "fwd.failed": "未发送给 {name}：{reason}", "fwd.nothing": "没有可以转发的消息。",
    "fwd.default_title": "聊天记录", "act.selected": "已选 {n} 条",
    "sanction.muted": "你已被管理员禁言，暂时无法发送消息。", "sanction.unmuted": "你可以发送消息了。",
    "speak.account_muted": "你的账号已被管理员禁言。", "speak.account_muted_until": "你的账号已被禁言至 {time}。",
    "speak.member_muted": "你已在本群被禁言。", "speak.member_muted_until": "你已在本群被禁言至 {time}。",
    "speak.all_muted": "群主或管理员已开启全员禁言。",
    "msg.image": "图片", "msg.open_image": "查看图片", "msg.video": "视频", "msg.file": "文件",
    "msg.location": "位置", "msg.map": "地图", "msg.download": "下载", "msg.unsupported": "暂不支持的消息",
    "msg.voice": "语音", "msg.voice_line": "[语音] {s}″", "voiceplay.play": "播放语音消息，{n} 秒",
    "voiceplay.play_one": "播放语音消息，1 秒", "voiceplay.pause": "暂停语音消息",
    "voiceplay.failed": "这条语音无法播放", "voiceplay.unplayed": "未播放",
    "voiceplay.unplayed_suffix": "，未播放", "voiceplay.recording": "录音时无法播放语音。",
    "sys.generic": "群信息已更新", "sys.group_created": "群已创建",
    "loc.title": "地点名称", "loc.lat": "纬度", "loc.lng": "经度", "loc.use_mine": "使用我的位置", "loc.locating": "定位中…",
    "loc.denied": "无法获取位置，请手动输入坐标。", "loc.unavailable": "此浏览器无法定位。",
    "loc.invalid": "请输入纬度（−90…90）和经度（−180…180）。", "loc.my_location": "我的位置", "loc.pinned": "标记的位置",
    "contacts.requests": "新的朋友", "contacts.add": "添加朋友", "contacts.groups": "群聊（{n}）", "contacts.friends": "好友（{n}）",
    "contacts.no_friends": "还没有好友。", "contacts.profile": "资料", "contacts.message": "发消息", "contacts.set_remark": "设置备注",
    "contacts.remove": "删除好友", "contacts.remove_confirm": "将 {name} 从好友中删除？", "contacts.block": "加入黑名单",
    "contacts.block_confirm": "将 {name} 加入黑名单？对方将无法给你发消息。", "contacts.blocked": "已加入黑名单。", "contacts.not_friend": "不在你的通讯录中。",
    "search.placeholder": "用户名、昵称或群名", "search.users": "用户", "search.groups": "群聊", "search.none": "没有找到。",
    "search.add": "添加", "search.requested": "已申请", "search.join": "加入", "search.ask_join": "申请加入",
    "search.request_title": "添加 {name}", "search.request_default": "我是 {name}", "search.send_request": "发送申请", "search.request_sent": "申请已发送。",
    "requests.accept": "接受", "requests.reject": "拒绝", "requests.withdraw": "撤回", "requests.waiting": "等待验证",
    "requests.none": "暂无好友申请。", "requests.accepted": "已添加", "requests.rejected": "已拒绝", "requests.withdrawn": "已撤回", "requests.pending": "待处理",
    "group.create": "发起群聊", "group.name": "群名称", "group.pick_members": "选择成员", "group.no_friends_to_pick": "没有可添加的好友。",
    "group.info": "群聊信息", "group.intro": "群介绍", "group.announcement": "群公告", "group.no_announcement": "暂无公告。",
    "group.members": "群成员", "group.invite": "邀请", "group.join_requests": "入群申请", "group.edit": "编辑群资料",
    "group.mute_all": "全员禁言", "group.unmute_all": "解除全员禁言", "group.leave": "退出群聊", "group.leave_confirm": "退出 {name}？",
    "group.dissolve": "解散群聊", "group.dissolve_confirm": "为所有人解散 {name}？", "group.reason": "原因（可选）",
    "group.make_admin": "设为管理员", "group.make_member": "取消管理员", "group.transfer": "转让群主", "group.remove": "移出群聊",
    "group.mute_member": "禁言一小时", "group.unmute_member": "解除禁言",
    "group.role_owner": "群主", "group.role_admin": "管理员", "group.role_member": "成员",
    "group.policy": "加群方式", "group.policy_open": "任何人可加入", "group.policy_approval": "需要审核", "group.policy_invite": "仅限邀请",
    "group.discoverable": "允许被搜索到",
    "me.profile": "个人资料", "me.devices": "登录设备", "me.settings": "设置", "me.password": "密码与账号", "me.sign_out": "退出登录",
    "me.sign_out_confirm": "退出此设备的登录？",
    "profile.nickname": "昵称", "profile.avatar": "头像链接", "profile.signature": "个性签名",
    "profile.change_photo": "更换头像", "profile.avatar_link": "或使用链接（https://…）", "profile.crop_title": "裁剪照片",
    "profile.crop_hint": "拖动或用方向键移动；用滑块、滚轮、双指或 + 和 − 缩放。", "profile.crop_area": "照片裁剪区域",
    "profile.zoom": "缩放", "profile.use_photo": "使用照片", "profile.photo_saved": "头像已更新", "profile.uploading": "正在上传…",
    "profile.not_image": "这个文件不是浏览器能打开的图片。",
    "devices.this": "本机", "devices.sign_out": "下线", "devices.sign_out_others": "下线所有其他设备",
    "devices.others_confirm": "其他设备都需要重新登录。", "devices.last_seen": "最近使用",
    "settings.language": "语言", "settings.theme": "主题", "theme.auto": "跟随系统", "theme.light": "浅色", "theme.dark": "深色",
    "lang.en": "English", "lang.zh-CN": "简体中文",
    "emoji.none": "还没有最近使用的表情。", "emoji.recent": "最近", "emoji.smileys": "笑脸", "emoji.people": "人物", "emoji.animals": "自然",
    "emoji.food": "食物", "emoji.activities": "活动", "emoji.travel": "地点", "emoji.objects": "物品", "emoji.symbols": "符号",
    "chats.at_me": "[有人@我]", "chats.notices": "系统通知", "chat.notice_sub": "系统消息", "chat.notice_readonly": "系统通知不可回复。", "chat.notice_label": "通知",
    "composer.reply_to": "回复 {name}", "composer.editing": "编辑消息", "composer.cancel": "取消",
    "chats.draft": "[草稿]", "composer.drop": "松开即可发送", "composer.too_large": "{name} 超过了 {max} 的上限。",
    "composer.cannot_send": "你不能在这里发消息。", "time.just_now": "刚刚",
    "composer.edited_nothing": "没有改动。", "mention.all": "所有人", "mention.all_name": "所有人", "mention.list": "选择提醒的人",
    "voice.record": "录制语音消息", "voice.recording": "正在录制语音消息", "voice.send": "发送语音",
    "voice.cancel": "取消录音", "voice.slide_cancel": "手指上滑，取消发送", "voice.release_cancel": "松开手指，取消发送",
    "voice.too_short": "说话时间太短", "voice.left": "还可以说 {n} 秒", "voice.stopped": "录音已停止",
    "voice.upload_failed": "语音未发送", "voice.retry": "重新发送", "voice.discard": "丢弃",
    "voice.denied": "Parley 需要使用麦克风才能录音，请在浏览器的网站设置中允许。",
    "voice.no_microphone": "未找到麦克风。", "voice.unsupported": "此浏览器无法录制语音消息。",
    "voice.insecure": "录音需要安全连接（https）。", "voice.failed": "无法启动麦克风。",
    "pins.label": "置顶消息", "pins.unpin": "取消置顶", "pins.count": "{i}/{n}",
    "jump.new_messages": "{n} 条新消息", "jump.bottom": "回到最新消息", "jump.mention": "有人@我", "jump.not_found": "该消息无法查看。",
    "search.box": "搜索", "search.contacts": "联系人", "search.messages": "聊天记录", "search.in_chat": "查找聊天记录",
    "search.partial": "部分消息未能及时搜索，请换更具体的词。",
    "notify.ask": "开启消息通知？", "notify.enable": "开启", "notify.not_now": "以后再说", "notify.new_message": "你收到一条新消息",
    "notify.title": "新消息通知", "notify.on": "本机显示通知", "notify.sound": "声音",
    "notify.previews": "通知显示消息内容", "notify.push": "关闭 Parley 时推送（本机）",
    "notify.push_on": "已开启", "notify.push_off": "未开启", "notify.push_denied": "已被浏览器禁止", "notify.push_unsupported": "此浏览器不支持",
    "notify.denied": "浏览器已禁止 Parley 的通知，请在网站设置中允许。", "notify.unsupported": "此浏览器无法显示通知。",
    "notify.push_devices": "已开启推送的设备", "notify.no_push_devices": "还没有设备开启推送。", "notify.push_failed": "无法开启推送。",
    "notify.push_enable": "开启", "notify.push_disable": "关闭",
    "token.page_title": "登录 · Parley", "token.title": "登录 Parley？", "token.wait": "请稍候。",
    "token.ask": "一个应用通过登录链接把你带到了这里。只有链接是你自己打开的，才继续。",
    "token.current": "你当前登录的是 {name}；要改用链接中的账号吗？",
    "token.confirm": "登录", "token.switch": "改用链接中的账号", "token.open": "打开聊天",
    "token.done_title": "已登录", "token.done": "你已登录为 {name}。", "token.failed_title": "无法登录",
    "token.password": "改用密码登录", "token.unreachable": "无法连接服务器，请重试。",
    "token.invalid": "该登录链接无效、已过期或已被使用。", "token.replayed": "该登录链接已被使用过。",
    "token.banned": "该账号已被封禁。", "token.protected": "该账号不能通过链接登录。",
    "token.rate_limited": "登录尝试过于频繁，请稍后再试。", "token.not_found": "该账号不存在。",
  },
};

function initial() {
  const saved = localStorage.getItem(KEY);
  if (LOCALES.includes(saved)) return saved;
  return (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh-CN" : "en";
}

let current = initial();
const listeners = new Set();

export function locale() {
  return current;
}

export function t(key, vars) {
  let text = STRINGS[current][key] ?? STRINGS.en[key] ?? key;
  for (const [name, value] of Object.entries(vars || {})) text = text.replaceAll(`{${name}}`, String(value));
  return text;
}

/** Fill the shell's static labels: data-i18n (text), data-i18n-label (aria-label). */
export function translatePage(root = document) {
  document.documentElement.lang = current;
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
}

export function onLocale(fn) {
  listeners.add(fn);
}

export function setLocale(code) {
  if (!LOCALES.includes(code)) return;
  current = code;
  localStorage.setItem(KEY, code);
  translatePage();
  for (const fn of listeners) fn(code);
}
