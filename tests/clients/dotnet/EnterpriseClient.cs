// A typed .NET client: the proxy Mono's wsdl tool (the .NET Framework's wsdl.exe) generates from
// the served enterprise WSDL, compiled with mcs, as a .NET user of "Add Web Reference" writes one.
// Arguments: loginUrl username password certificateSha1 (the server's self-signed certificate).
using System;
using System.Net;

public static class EnterpriseClient
{
    public static int Main(string[] args)
    {
        ServicePointManager.ServerCertificateValidationCallback =
            (sender, certificate, chain, errors) => certificate.GetCertHashString() == args[3];
        var service = new SforceService { Url = args[0] };
        LoginResult login = service.login(args[1], args[2]);
        service.Url = login.serverUrl;
        service.SessionHeaderValue = new SessionHeader { sessionId = login.sessionId };

        QueryResult found = service.query("SELECT Id, LastName, Account.Name FROM Contact ORDER BY LastName");
        Console.WriteLine("size=" + found.size);
        foreach (sObject record in found.records)
        {
            var contact = (Contact) record;
            Console.WriteLine("contact=" + contact.LastName + "|" + (contact.Account == null ? "-" : contact.Account.Name));
        }
        LimitInfo info = service.LimitInfoHeaderValue.limitInfo[0];
        Console.WriteLine("limit=" + info.type + "|" + info.current + "|" + info.limit);

        var made = new Contact { LastName = "DotNet", Owner = new User { Username = args[1] } };
        SaveResult saved = service.create(new sObject[] { made })[0];
        Console.WriteLine("created=" + saved.success + "|" + saved.id);
        foreach (Error error in saved.errors ?? new Error[0])
        {
            Console.WriteLine("error=" + error.statusCode + "|" + error.message);
        }
        try
        {
            service.query("SELECT Nope FROM Contact");
        }
        catch (System.Web.Services.Protocols.SoapException fault)
        {
            Console.WriteLine("fault=" + fault.Code.Name);
        }
        return 0;
    }
}
