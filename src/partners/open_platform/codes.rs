//! The platform codes of the open-platform spec (附录2), with their messages exactly as listed.

/// A platform-level code. Credential stage codes start 6085, business stage codes 6084.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 60850000 系统处理成功 (token / ticket issued).
    CredentialOk,
    /// 60856999 未知异常信息 (credential stage).
    CredentialUnknown,
    /// 60851001 Type类型不存在.
    TypeNotFound,
    /// 60851007 无效的请求调用.
    InvalidCall,
    /// 60851009 无效的appid.
    InvalidAppId,
    /// 60851002 无效的access_token.
    InvalidAccessToken,
    /// 60851003 无效的ticket.
    InvalidTicket,
    /// 60851004 access_token已过期.
    AccessTokenExpired,
    /// 60851005 ticket已过期.
    TicketExpired,
    /// 60851010 ticket获取失败.
    TicketIssueFailed,
    /// 60851013 access_token获取失败.
    AccessTokenIssueFailed,
    /// 60840000 系统处理成功 (business stage; see `jsonData` for the business result).
    Ok,
    /// 60846999 未知异常信息.
    Unknown,
    /// 60840002 未满足接口输入要求.
    InputRequirement,
    /// 60840003 交易超时.
    Timeout,
    /// 60840110 请求路径不合法.
    IllegalPath,
    /// 60841017 ticket验证失败.
    TicketVerifyFailed,
    /// 60841018 接入签名不正确.
    SignatureIncorrect,
}

impl OpCode {
    /// Every code, for documentation and tests.
    pub const ALL: [OpCode; 18] = [
        OpCode::CredentialOk,
        OpCode::CredentialUnknown,
        OpCode::TypeNotFound,
        OpCode::InvalidCall,
        OpCode::InvalidAppId,
        OpCode::InvalidAccessToken,
        OpCode::InvalidTicket,
        OpCode::AccessTokenExpired,
        OpCode::TicketExpired,
        OpCode::TicketIssueFailed,
        OpCode::AccessTokenIssueFailed,
        OpCode::Ok,
        OpCode::Unknown,
        OpCode::InputRequirement,
        OpCode::Timeout,
        OpCode::IllegalPath,
        OpCode::TicketVerifyFailed,
        OpCode::SignatureIncorrect,
    ];

    /// `code` on the wire.
    pub fn code(self) -> &'static str {
        match self {
            OpCode::CredentialOk => "60850000",
            OpCode::CredentialUnknown => "60856999",
            OpCode::TypeNotFound => "60851001",
            OpCode::InvalidCall => "60851007",
            OpCode::InvalidAppId => "60851009",
            OpCode::InvalidAccessToken => "60851002",
            OpCode::InvalidTicket => "60851003",
            OpCode::AccessTokenExpired => "60851004",
            OpCode::TicketExpired => "60851005",
            OpCode::TicketIssueFailed => "60851010",
            OpCode::AccessTokenIssueFailed => "60851013",
            OpCode::Ok => "60840000",
            OpCode::Unknown => "60846999",
            OpCode::InputRequirement => "60840002",
            OpCode::Timeout => "60840003",
            OpCode::IllegalPath => "60840110",
            OpCode::TicketVerifyFailed => "60841017",
            OpCode::SignatureIncorrect => "60841018",
        }
    }

    /// `msg` on the wire, exactly as the spec lists it.
    pub fn msg(self) -> &'static str {
        match self {
            OpCode::CredentialOk | OpCode::Ok => "系统处理成功",
            OpCode::CredentialUnknown | OpCode::Unknown => "未知异常信息",
            OpCode::TypeNotFound => "Type类型不存在",
            OpCode::InvalidCall => "无效的请求调用",
            OpCode::InvalidAppId => "无效的appid",
            OpCode::InvalidAccessToken => "无效的access_token",
            OpCode::InvalidTicket => "无效的ticket",
            OpCode::AccessTokenExpired => "access_token已过期",
            OpCode::TicketExpired => "ticket已过期",
            OpCode::TicketIssueFailed => "ticket获取失败",
            OpCode::AccessTokenIssueFailed => "access_token获取失败",
            OpCode::InputRequirement => "未满足接口输入要求",
            OpCode::Timeout => "交易超时",
            OpCode::IllegalPath => "请求路径不合法",
            OpCode::TicketVerifyFailed => "ticket验证失败",
            OpCode::SignatureIncorrect => "接入签名不正确",
        }
    }

    /// Whether the code reports success.
    pub fn is_ok(self) -> bool {
        matches!(self, OpCode::CredentialOk | OpCode::Ok)
    }
}
